import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, open, rm, statfs } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterAll, expect, test } from "vitest";
import { TaskLogWriter } from "../../src/worker/task-log-writer.js";
import { until } from "../helpers/task-logs.js";
import { sumReports } from "./harness/delivery-checker.js";
import { recordScenario } from "./harness/fault-results.js";
import { LeaderProcess } from "./harness/leader-process.js";
import { ackedTotal, checkControl, checkRun, finishWorkers, startWorkers } from "./harness/scenario-run.js";
import { UnsafeWorker } from "./harness/unsafe-worker.js";

/**
 * Scenario 6: the leader's data directory on a small tmpfs that fills up. While it
 * is full nothing is acknowledged and workers are told RESOURCE_EXHAUSTED; the
 * leader stays up; once space returns everything arrives, and survives a restart.
 */

// Room enough that what the leader wrote before the disk filled (its WAL, flushed and compacted copies) leaves
// RocksDB the headroom it needs once the filler goes: on 256 MiB it sometimes did not, and writes never resumed.
const TMPFS_SIZE = "1g";
const FULL_FOR_MS = 3000;

/** Appends to `file` until the filesystem is full (the leader writes meanwhile, so the room left is a moving target). */
async function fillDisk(file: string, fs: { blocks: number; bsize: number }): Promise<void> {
  const piece = Buffer.alloc(256 * 1024);
  const handle = await open(file, "a");
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
  const workers = startWorkers(leader.url, runId, 4, { linesPerTick: 100 });
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
  // Space RocksDB freed meanwhile (a flushed WAL) is taken too; then a probe line is written
  // while the disk is full: it must not be acknowledged until space returns.
  await fillDisk(filler, await statfs(mountPoint));
  const ackedWhenFull = ackedTotal(workers);
  // Its last refusals, for the failure message.
  const probeRefusals: string[] = [];
  const probe = TaskLogWriter.open({
    leader: leader.url,
    runId,
    task: "probe",
    settings: { backoffInitialMs: 50, backoffMaxMs: 500 },
    onRetry: (err) => probeRefusals.push(`${new Date().toISOString().slice(11, 23)} ${String(err)}`),
  });
  probe.write("stdout", "written while the disk is full");
  let probeDurable = false;
  const probeFlushed = probe.flush().then(() => {
    probeDurable = true;
  });
  await new Promise((resolve) => setTimeout(resolve, FULL_FOR_MS));
  expect(probeDurable).toBe(false);
  expect(probe.durableSeq).toBe(0);
  expect(leader.pid).toBe(pid);
  const ackedWhileFull = ackedTotal(workers) - ackedWhenFull;
  step(`full for ${FULL_FOR_MS} ms; probe not acknowledged; acked ${ackedTotal(workers)}`);

  await rm(filler);
  const freedAt = Date.now();
  await until(async () => probeDurable, 120_000).catch(() => {
    throw new Error(
      `the probe line was not acknowledged within 120 s after space returned (leader pid ${leader?.pid}); its last refusals: ${probeRefusals.slice(-12).join(" | ") || "none"}`,
    );
  });
  await probeFlushed;
  const recoveryMs = Date.now() - freedAt;
  step(`recovered in ${recoveryMs} ms`);
  await probe.abort();
  const outcomes = await finishWorkers(workers);
  step("workers finished");
  const report = await checkRun(leader.url, runId, outcomes);
  expect(report).toMatchObject({ lost: 0, duplicated: 0, phantom: 0, reordered: 0 });
  expect(leader.pid).toBe(pid);
  expect(leader.starts).toBe(1);
  expect(leader.stderr).toMatch(/writes resume after a write fault/);

  // No corruption: a restarted leader serves the same logs.
  await leader.stop();
  await leader.restart();
  const again = await checkRun(leader.url, runId, outcomes);
  expect(again).toEqual(report);

  const controlReport = await checkControl(leader.url, runId, control);

  recordScenario({
    scenario: "6 full disk (tmpfs)",
    iterations: 1,
    report: sumReports([report]),
    recoveryMs,
    negativeControl: `forget worker: ${controlReport.lost} lost - flagged`,
    notes: `a line written while the disk was full was not acknowledged in ${FULL_FOR_MS} ms, and was ${(recoveryMs / 1000).toFixed(2)} s after space returned; ${ackedWhileFull} worker lines acknowledged in that window (writes from before the disk filled); leader pid unchanged`,
  });
});
