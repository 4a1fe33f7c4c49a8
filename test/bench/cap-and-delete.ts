import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AdminService } from "../../gen/joblog/v1/admin_pb.js";
import { Result } from "../../gen/joblog/v1/log_pb.js";
import { LeaderClient } from "../../src/client/leader-client.js";
import { configSchema } from "../../src/config/config-schema.js";
import { startLeader } from "../../src/leader/leader.js";
import { TaskLogWriter } from "../../src/worker/task-log-writer.js";
import { benchLines } from "./bench-lines.js";

/**
 * What the per-task size cap costs ingest, and how long DeleteRun takes: one
 * task of N realistic lines pushed by the worker library into an in-process
 * leader (client and leader share this process, so compare the rows, not the
 * absolute rates), once without a cap and once with a 1 MiB cap; then the
 * uncapped run is deleted.
 *
 *   node --import tsx test/bench/cap-and-delete.ts [--lines 300000]
 */

const { values } = parseArgs({ options: { lines: { type: "string", default: "300000" } } });
const count = Number(values.lines);
const lines = benchLines(20_000);

async function ingest(maxTaskBytes: number, runId: string): Promise<void> {
  const data = mkdtempSync(join(tmpdir(), "joblog-bench-cap-"));
  const config = configSchema.parse({
    server: { listen: "127.0.0.1:0", data_dir: data },
    retention: { max_task_bytes: maxTaskBytes },
  });
  const leader = await startLeader(config, () => {});
  const url = `http://${leader.address}`;
  try {
    const writer = TaskLogWriter.open({ leader: url, runId, task: "build" });
    const start = performance.now();
    for (let i = 0; i < count; i++) if (!writer.write("stdout", lines[i % lines.length] as string)) await writer.ready();
    await writer.complete({ result: "succeeded", exitCode: 0 });
    const seconds = (performance.now() - start) / 1000;
    const client = new LeaderClient(url);
    const task = (await client.getRun({ runId })).tasks[0];
    await client.completeRun({ runId, result: Result.SUCCEEDED });
    client.close();
    const label = maxTaskBytes >= 2 ** 30 ? "no cap (1 GiB)" : `cap ${maxTaskBytes / 1024} KiB`;
    process.stdout.write(
      `${label.padEnd(16)} ${(count / seconds / 1000).toFixed(0)}k lines/s, log ${(Number(task?.length) / 1e6).toFixed(1)} MB, ${task?.recordCount} records readable\n`,
    );
    if (maxTaskBytes >= 2 ** 30) {
      const admin = createClient(AdminService, createGrpcTransport({ baseUrl: url }));
      const t = performance.now();
      await admin.deleteRun({ runId });
      process.stdout.write(`DeleteRun of that run: ${(performance.now() - t).toFixed(0)} ms\n`);
    }
  } finally {
    await leader.stop();
    rmSync(data, { recursive: true, force: true });
  }
}

await ingest(2 ** 30, "bench-uncapped");
await ingest(1024 * 1024, "bench-capped");
