import type { Command } from "commander";
import { loadConfig } from "../../config/load-config.js";
import { SecretMasker } from "../../lines/secret-masker.js";
import { runCommand } from "../../worker/run-command.js";
import { TaskLogRefusedError, TaskLogWriter } from "../../worker/task-log-writer.js";
import { CliError, describeError } from "../cli-errors.js";
import { currentConnection } from "../leader-connection.js";
import { collectMasks, MASK_ENV_VAR } from "../mask-values.js";

interface RunOptions {
  leader: string;
  run: string;
  task: string;
  workflow?: string;
  workspace?: string;
  config?: string;
  quiet?: boolean;
  mask: string[];
  maskEnv: string[];
  spoolDir?: string;
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function registerRun(program: Command, defaultLeader: string): void {
  program
    .command("run")
    .description("run a command as a task and stream its stdout and stderr to the leader; exits with the command's code")
    .requiredOption("--run <id>", "run id (created on first use)")
    .requiredOption("--task <name>", "task name")
    .option("--leader <url>", "leader URL (env JOBLOG_LEADER)", defaultLeader)
    .option("--workflow <name>", "workflow of a new run (default: default)")
    .option("--workspace <name>", "workspace of a new run (default: default)")
    .option("--config <file>", "YAML configuration file; its worker section sets batching")
    .option("--quiet", "do not copy the command's output to this terminal")
    .option("--mask <value>", "replace this secret (and its URL-encoded and base64 forms) with *** in the log; repeatable", collect, [])
    .option("--mask-env <name>", `mask the value of this environment variable; repeatable (also: ${MASK_ENV_VAR}=NAME,NAME)`, collect, [])
    .option("--spool-dir <dir>", "spool output that does not fit in memory to files here while the leader is away (worker.spool_dir)")
    .argument("<command...>", "the command and its arguments, after --")
    .usage("--run ID --task NAME [options] -- CMD [ARGS...]")
    .action(async (command: string[], opts: RunOptions) => {
      if (opts.task === "_run" || opts.task === "_server") {
        throw new CliError(
          `--task ${opts.task} is reserved for the run log and server events; a command's output goes to a task of its own`,
          2,
        );
      }
      const config = loadConfig({ file: opts.config || process.env.JOBLOG_CONFIG || undefined });
      const w = config.worker;
      const masks = collectMasks({ values: opts.mask, envNames: opts.maskEnv, env: process.env }, (message) =>
        process.stderr.write(`${message}\n`),
      );
      let lastReport = 0;
      let writer: TaskLogWriter;
      try {
        writer = TaskLogWriter.open({
          leader: opts.leader,
          connection: currentConnection(),
          runId: opts.run,
          task: opts.task,
          ...(opts.workspace ? { workspace: opts.workspace } : {}),
          ...(opts.workflow ? { workflow: opts.workflow } : {}),
          masks,
          settings: {
            batchMaxLines: w.batch_max_lines,
            batchMaxBytes: w.batch_max_bytes,
            batchMaxIntervalMs: w.batch_max_interval_ms,
            bufferMaxBytes: w.buffer_max_bytes,
            streamMaxBytes: w.stream_max_bytes,
            streamMaxAgeMs: w.stream_max_age_ms,
            maxLineBytes: w.max_line_bytes,
            backoffInitialMs: w.backoff_initial_ms,
            backoffMaxMs: w.backoff_max_ms,
            spoolDir: opts.spoolDir ?? w.spool_dir,
            spoolMaxBytes: w.spool_max_bytes,
            dropAfterBytes: w.drop_after_bytes,
          },
          onRetry: (err, delayMs) => {
            // One message per few seconds: a long outage should not flood the terminal.
            if (Date.now() - lastReport < 5000) return;
            lastReport = Date.now();
            process.stderr.write(`joblog: ${describeError(err, opts.leader)}; retrying in ${delayMs} ms, output is kept\n`);
          },
        });
      } catch (err) {
        if (err instanceof TaskLogRefusedError) throw new CliError(err.message, 2);
        throw err;
      }
      const [cmd, ...args] = command;
      if (!cmd) throw new CliError("no command given; put it after --", 2);
      const outcome = await runCommand({
        writer,
        command: cmd,
        args,
        maxLineBytes: w.max_line_bytes,
        echo: !opts.quiet,
        masker: SecretMasker.create(masks),
        report: (message) => process.stderr.write(`${message}\n`),
      });
      process.exitCode = outcome.exitCode;
    });
}
