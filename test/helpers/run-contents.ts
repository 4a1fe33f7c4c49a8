import { LeaderClient } from "../../src/client/leader-client.js";
import { configSchema, type JoblogConfig } from "../../src/config/config-schema.js";
import { startLeader } from "../../src/leader/leader.js";
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

/** Starts a leader on a (restored) data directory, reads every log back, stops it. */
export async function contentsServedFrom(dataDir: string, encryption?: JoblogConfig["encryption"]): Promise<RunContents> {
  const config = configSchema.parse({ server: { listen: "127.0.0.1:0", data_dir: dataDir } });
  const leader = await startLeader(encryption ? { ...config, encryption } : config, () => {});
  const client = new LeaderClient(`http://${leader.address}`);
  try {
    return await runContents(client);
  } finally {
    client.close();
    await leader.stop();
  }
}
