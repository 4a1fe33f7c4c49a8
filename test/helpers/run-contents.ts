import type { LeaderClient } from "../../src/client/leader-client.js";
import { readAll } from "./task-logs.js";

/** Every run a leader lists, with each log's bytes (tasks, `_run`, `_server`): what a backup must bring back. */
export type RunContents = Map<string, Map<string, string>>;

export async function runContents(client: LeaderClient, only?: (runId: string) => boolean): Promise<RunContents> {
  const runs: RunContents = new Map();
  const listed = await client.listRuns({ pageSize: 500 });
  for (const run of listed.runs) {
    if (only && !only(run.runId)) continue;
    const got = await client.getRun({ runId: run.runId });
    const logs = new Map<string, string>();
    for (const task of [...got.tasks.map((t) => t.name), "_run", "_server"]) logs.set(task, await readAll(client, run.runId, task));
    runs.set(run.runId, logs);
  }
  return runs;
}

/** The task names each run lists (GetRun), sorted runs first. */
export async function listedTasks(client: LeaderClient): Promise<Array<[string, string[]]>> {
  const listed = await client.listRuns({ pageSize: 500 });
  const out: Array<[string, string[]]> = [];
  for (const run of listed.runs) out.push([run.runId, (await client.getRun({ runId: run.runId })).tasks.map((t) => t.name)]);
  return out.sort(([a], [b]) => a.localeCompare(b));
}
