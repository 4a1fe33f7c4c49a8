import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Command } from "commander";
import { Result, type Run, RunState, type Task, TaskState } from "../../../gen/joblog/v1/log_pb.js";
import { CliError } from "../cli-errors.js";
import { parseCount } from "../cli-values.js";
import { leaderClient } from "../leader-connection.js";

const STATES: Record<string, RunState> = { running: RunState.RUNNING, completed: RunState.COMPLETED };

function when(ts: Run["startedAt"]): string {
  return ts ? new Date(timestampMs(ts)).toISOString().replace(".000Z", "Z") : "-";
}

function outcome(state: RunState | TaskState, result: Result): string {
  if (state === RunState.RUNNING || state === TaskState.RUNNING) return "running";
  return result === Result.SUCCEEDED ? "succeeded" : result === Result.FAILED ? "failed" : "completed";
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return `${rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")}\n`;
}

export function registerRuns(program: Command, defaultLeader: string): void {
  const runs = program
    .command("runs")
    .description("list runs, newest first")
    .option("--leader <url>", "leader URL (env JOBLOG_LEADER)", defaultLeader)
    .option("--workspace <name>", "only this workspace")
    .option("--workflow <name>", "only this workflow")
    .option("--state <state>", "only running or completed runs")
    .option("--limit <count>", "runs per page", "50")
    .option("--page-token <token>", "continue a listing (printed after a full page)")
    .option("--json", "print JSON lines instead of a table")
    .action(
      async (opts: {
        leader: string;
        workspace?: string;
        workflow?: string;
        state?: string;
        limit: string;
        pageToken?: string;
        json?: boolean;
      }) => {
        const state = opts.state === undefined ? RunState.UNSPECIFIED : STATES[opts.state];
        if (state === undefined) throw new CliError(`--state must be running or completed, not ${opts.state}`, 2);
        const client = leaderClient(opts.leader);
        try {
          const page = await client.listRuns({
            workspace: opts.workspace ?? "",
            workflow: opts.workflow ?? "",
            state,
            pageSize: parseCount(opts.limit, "--limit"),
            pageToken: opts.pageToken ?? "",
          });
          if (opts.json) {
            for (const r of page.runs) {
              process.stdout.write(
                `${JSON.stringify({ run_id: r.runId, workspace: r.workspace, workflow: r.workflow, state: outcome(r.state, r.result), started_at: when(r.startedAt), tasks: r.taskCount })}\n`,
              );
            }
          } else {
            const rows = [["RUN", "WORKSPACE", "WORKFLOW", "STATE", "STARTED", "TASKS"]];
            for (const r of page.runs)
              rows.push([r.runId, r.workspace, r.workflow, outcome(r.state, r.result), when(r.startedAt), String(r.taskCount)]);
            process.stdout.write(table(rows));
          }
          if (page.nextPageToken) process.stderr.write(`more: --page-token ${page.nextPageToken}\n`);
        } finally {
          client.close();
        }
      },
    );

  program
    .command("show")
    .description("show a run and its tasks")
    .argument("<run>", "run id")
    .option("--leader <url>", "leader URL (env JOBLOG_LEADER)", defaultLeader)
    .action(async (run: string, opts: { leader: string }) => {
      const client = leaderClient(opts.leader);
      try {
        const r = await client.getRun({ runId: run });
        const info = r.run;
        if (info) {
          process.stdout.write(
            `run ${info.runId}  workspace ${info.workspace}  workflow ${info.workflow}  ${outcome(info.state, info.result)}  started ${when(info.startedAt)}\n\n`,
          );
        }
        const rows = [["TASK", "STATE", "EXIT", "BYTES", "LINES", "STARTED", "ENDED"]];
        const row = (t: Task) => [
          t.name,
          outcome(t.state, t.result),
          t.state === TaskState.COMPLETED ? t.signal || String(t.exitCode) : "-",
          String(t.length),
          String(t.recordCount),
          when(t.startedAt),
          when(t.endedAt),
        ];
        for (const t of r.tasks) rows.push(row(t));
        if (r.runLog) rows.push(row(r.runLog));
        if (r.serverEvents) rows.push(row(r.serverEvents));
        process.stdout.write(table(rows));
      } finally {
        client.close();
      }
    });

  program
    .command("complete")
    .description("complete a run with the driver's result")
    .argument("<run>", "run id")
    .requiredOption("--result <result>", "succeeded or failed")
    .option("--leader <url>", "leader URL (env JOBLOG_LEADER)", defaultLeader)
    .action(async (run: string, opts: { leader: string; result: string }) => {
      if (opts.result !== "succeeded" && opts.result !== "failed")
        throw new CliError(`--result must be succeeded or failed, not ${opts.result}`, 2);
      const client = leaderClient(opts.leader);
      try {
        await client.completeRun({ runId: run, result: opts.result === "succeeded" ? Result.SUCCEEDED : Result.FAILED });
        process.stdout.write(`run ${run} completed: ${opts.result}\n`);
      } finally {
        client.close();
      }
    });

  // `joblog runs delete RUN`: --leader is the parent's option (given before or after `delete`).
  runs
    .command("delete")
    .description("delete a completed run for good: its logs, its data keys and its archive objects (a running run is refused)")
    .argument("<run>", "run id")
    .action(async (run: string, _opts: unknown, command: Command) => {
      const client = leaderClient(command.optsWithGlobals<{ leader: string }>().leader);
      try {
        const deleted = await client.deleteRun({ runId: run });
        process.stdout.write(`run ${run} deleted: ${deleted.tasks} task logs, ${deleted.archiveObjects} archive objects\n`);
      } finally {
        client.close();
      }
    });
}
