import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, open, rm, statfs } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterAll, expect, test } from "vitest";
import { TaskLogWriter } from "../../src/worker/task-log-writer.js";
import { until } from "../helpers/task-logs.js";
import { flagged, sumReports } from "./harness/delivery-checker.js";
import { recordScenario } from "./harness/fault-results.js";
import { LeaderProcess } from "./harness/leader-process.js";
import { RecordingWorker } from "./harness/recording-worker.js";
import { ackedTotal, checkRun } from "./harness/scenario-run.js";
import { UnsafeWorker } from "./harness/unsafe-worker.js";

/**
 * Scenario 6: the leader's data directory on a small tmpfs that fills up. While it
 * is full nothing is acknowledged and workers are told RESOURCE_EXHAUSTED; the
 * leader stays up; once space returns everything arrives, and survives a restart.
 */

const TMPFS_SIZE = "256m";
const FULL_FOR_MS = 3000;

/** Appends to `file` until the filesystem is full (the leader writes meanwhile, so the room left is a moving target). */
async function fillDisk(file: string, fs: { blocks: number; bsize: number }): Promise<void> {
  const piece = Buffer.alloc(256 * 1024);
  const handle = await open(file, "w");
  try {
    for (let i = 0; i < (fs.blocks * fs.bsize) / piece.length + 16; i++) await handle.write(piece);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
  } finally {
    await handle.close();
  }
}

let dir: string | undefined;
let mnt: string | undefined;
let leader: LeaderProcess | undefined;
const step = (what: string) => process.stderr.write(`[full-disk ${new Date().toISOString().slice(11, 23)}] ${what}\n`);

afterAll(async () => {
  await leader?.kill();
  if (mnt) execFileSync("umount", ["-l", mnt]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("full disk: no acknowledgement while full, no crash, everything arrives once space returns", async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-faults-disk-"));
  const mountPoint = join(dir, "mnt");
  await mkdir(mountPoint);
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${TMPFS_SIZE}`, "tmpfs", mountPoint]);
  mnt = mountPoint;
  // Uncompressed chunks, so the workers fill the disk in seconds.
  leader = await LeaderProcess.start(dir, join(mountPoint, "data"), { storage: { chunk_compression: "none" } });
  const pid = leader.pid;
  const runId = "full-disk";
  const workers = Array.from(
    { length: 4 },
    (_, i) => new RecordingWorker({ url: leader?.url ?? "", runId, task: `w${i}`, linesPerTick: 100, tickMs: 10, maxLines: 2_000_000 }),
  );
  const control = new UnsafeWorker(leader.url, runId, "control-forget", "forget");
  await until(async () => ackedTotal(workers) > 0, 30_000);
  step("workers acknowledged");

  // Everything but what RocksDB has preallocated is taken by a filler file.
  const filler = join(mountPoint, "filler");
  await fillDisk(filler, await statfs(mountPoint));
  const refused = () => workers.some((w) => (w.retries.get(status.RESOURCE_EXHAUSTED) ?? 0) > 0);
  step("filler written");
  await until(async () => refused(), 120_000);
  step(`refused; acked ${ackedTotal(workers)}`);
  // The workers stop producing, so the space that returns is not taken again at once.
  for (const w of workers) w.stop();
  // Acknowledgements of writes made before the disk filled may still be on their way.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const ackedWhenFull = ackedTotal(workers);
  await new Promise((resolve) => setTimeout(resolve, FULL_FOR_MS));
  expect(ackedTotal(workers)).toBe(ackedWhenFull);
  expect(leader.pid).toBe(pid);

  step(`full for ${FULL_FOR_MS} ms; acked ${ackedTotal(workers)}`);
  await rm(filler);
  const freedAt = Date.now();
  // A probe line made durable after the space returned; the workers' lines too.
  const probe = TaskLogWriter.open({ leader: leader.url, runId, task: "probe", settings: { backoffInitialMs: 50, backoffMaxMs: 500 } });
  probe.write("stdout", "written once space returned");
  await Promise.all([probe.flush(), ...workers.map((w) => w.writer.flush())]);
  await probe.abort();
  const recoveryMs = Date.now() - freedAt;
  step(`recovered in ${recoveryMs} ms`);
  const outcomes = await Promise.all(workers.map(async (w) => ({ task: w.task, ...(await w.finish()) })));
  step("workers finished");
  const report = await checkRun(leader.url, runId, outcomes);
  expect(report).toMatchObject({ lost: 0, duplicated: 0, phantom: 0, reordered: 0 });
  expect(leader.pid).toBe(pid);
  expect(leader.starts).toBe(1);
  expect(leader.stderr).toMatch(/reopened after a write fault/);

  // No corruption: a restarted leader serves the same logs.
  await leader.stop();
  await leader.restart();
  const again = await checkRun(leader.url, runId, outcomes);
  expect(again).toEqual(report);

  const controlOutcome = { task: control.task, ...(await control.finish()) };
  const controlReport = await checkRun(leader.url, runId, [controlOutcome]);
  expect(flagged(controlReport)).toBe(true);

  recordScenario({
    scenario: "6 full disk (tmpfs)",
    iterations: 1,
    report: sumReports([report]),
    recoveryMs,
    negativeControl: `forget worker: ${controlReport.lost} lost - flagged`,
    notes: `${ackedWhenFull} lines acknowledged when the disk filled, none more in ${FULL_FOR_MS} ms full; leader pid unchanged`,
  });
});
