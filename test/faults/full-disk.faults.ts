import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, open, rm, stat, statfs, truncate } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterAll, expect, test } from "vitest";
import { autoFloorBytes } from "../../src/store/free-space-floor.js";
import { TaskLogWriter } from "../../src/worker/task-log-writer.js";
import { until } from "../helpers/task-logs.js";
import { sumReports } from "./harness/delivery-checker.js";
import { recordScenario } from "./harness/fault-results.js";
import { LeaderProcess } from "./harness/leader-process.js";
import { ackedTotal, checkControl, checkRun, finishWorkers, startWorkers } from "./harness/scenario-run.js";
import { UnsafeWorker } from "./harness/unsafe-worker.js";

/**
 * Scenario 6: the leader's data directory on a 64 MiB tmpfs, two workers pushing,
 * a filler file taking the rest. The leader refuses new lines (RESOURCE_EXHAUSTED)
 * within a poll of its free-space floor and says not ready; once space returns it
 * takes lines again without a restart. Then the same with a `kill -9` while full:
 * the restart, with only the floor free, opens, and nothing acknowledged is lost.
 */

const TMPFS_BYTES = 64 * 1024 * 1024;
const FULL_FOR_MS = 3000;
const MIB = 1024 * 1024;

/** Appends to `file` until the filesystem is full (the leader writes meanwhile, so the room left is a moving target). */
async function fillDisk(file: string): Promise<void> {
  const fs = await statfs(join(file, ".."));
  const piece = Buffer.alloc(64 * 1024);
  const handle = await open(file, "a");
  try {
    for (let i = 0; i < (fs.blocks * fs.bsize) / piece.length + 16; i++) await handle.write(piece);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
  } finally {
    await handle.close();
  }
}

async function freeBytes(path: string): Promise<number> {
  const fs = await statfs(path);
  return fs.bavail * fs.bsize;
}

/** Shrinks the filler until `path`'s filesystem has `bytes` free (or the filler is gone). */
async function leaveFree(filler: string, path: string, bytes: number): Promise<void> {
  const short = bytes - (await freeBytes(path));
  if (short <= 0) return;
  const size = (await stat(filler)).size;
  await truncate(filler, Math.max(0, size - short));
}

async function readyz(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, body: await res.text() };
}

/** `/readyz` once it answers `status`; it reuses a report for 2 s, so a change shows within a few. */
async function readyzTurns(url: string, status: number): Promise<{ status: number; body: string }> {
  let answer = await readyz(url);
  for (let i = 0; i < 50 && answer.status !== status; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    answer = await readyz(url);
  }
  expect(answer.status).toBe(status);
  return answer;
}

/** A writer of one line, with the refusals it was told. */
function probeWriter(url: string, runId: string, task: string) {
  const refusals: string[] = [];
  const writer = TaskLogWriter.open({
    leader: url,
    runId,
    task,
    settings: { backoffInitialMs: 50, backoffMaxMs: 500 },
    onRetry: (err) => refusals.push(`${new Date().toISOString().slice(11, 23)} ${String(err)}`),
  });
  const line = `written by ${task} while the disk is full`;
  writer.write("stdout", line);
  let durable = false;
  const flushed = writer.flush().then(() => {
    durable = true;
  });
  return { task, writer, line, refusals, flushed, durable: () => durable };
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

test("full disk: refused before RocksDB fills it, not ready, resumes in place; kill -9 while full loses nothing and reopens", async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-faults-disk-"));
  const mountPoint = join(dir, "mnt");
  await mkdir(mountPoint);
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${TMPFS_BYTES}`, "tmpfs", mountPoint]);
  mnt = mountPoint;
  const floorBytes = autoFloorBytes((await statfs(mountPoint)).blocks * (await statfs(mountPoint)).bsize);
  // Uncompressed chunks, so the workers' lines reach the disk as they are.
  leader = await LeaderProcess.start(dir, join(mountPoint, "data"), { storage: { chunk_compression: "none" } });
  const pid = leader.pid;
  const runId = "full-disk";
  // Small streams, so acknowledgements come every second or so: they are what the figures count.
  const workers = startWorkers(leader.url, runId, 2, { linesPerTick: 20, maxLines: 150_000, settings: { streamMaxBytes: 256 * 1024 } });
  const control = new UnsafeWorker(leader.url, runId, "control-forget", "forget");
  await until(async () => ackedTotal(workers) > 0, 30_000);
  expect((await readyz(leader.url)).status).toBe(200);
  step(`workers acknowledged; floor ${(floorBytes / MIB).toFixed(1)} MiB`);

  // Phase 1: the disk fills; the leader refuses, says not ready, and resumes once space returns.
  const filler = join(mountPoint, "filler");
  const refusals = () => workers.reduce((n, w) => n + (w.retries.get(status.RESOURCE_EXHAUSTED) ?? 0), 0);
  const refusedBefore = refusals();
  await fillDisk(filler);
  const fullAt = Date.now();
  const ackedWhenFull = ackedTotal(workers);
  step(`filler written; acked ${ackedWhenFull}`);
  await until(async () => refusals() > refusedBefore, 60_000);
  const firstRefusalMs = Date.now() - fullAt;
  const ackedAfterFull = ackedTotal(workers) - ackedWhenFull;
  step(`refused after ${firstRefusalMs} ms; ${ackedAfterFull} lines acknowledged meanwhile`);

  const notReady = await readyzTurns(leader.url, 503);
  expect(notReady.body).toMatch(/joblogs.*(free on its filesystem|writes fail)/);
  step(`readyz: ${notReady.body}`);

  const probe = probeWriter(leader.url, runId, "probe");
  await new Promise((resolve) => setTimeout(resolve, FULL_FOR_MS));
  expect(probe.durable()).toBe(false);
  expect(probe.writer.durableSeq).toBe(0);
  expect(probe.refusals.join("\n")).toMatch(/disk is full/);
  expect(leader.pid).toBe(pid);

  // As in the report: the filler goes, about a third of the disk comes back.
  await rm(filler);
  const freedAt = Date.now();
  const freeAfterDelete = await freeBytes(mountPoint);
  await until(async () => probe.durable(), 60_000).catch(() => {
    throw new Error(
      `the probe line was not acknowledged within 60 s after space returned (${(freeAfterDelete / MIB).toFixed(1)} MiB free); its last refusals: ${probe.refusals.slice(-8).join(" | ") || "none"}`,
    );
  });
  await probe.flushed;
  const resumeMs = Date.now() - freedAt;
  const ackedAtResume = ackedTotal(workers);
  await until(async () => ackedTotal(workers) > ackedAtResume, 30_000);
  expect(leader.pid).toBe(pid);
  await readyzTurns(leader.url, 200);
  step(`resumed ${resumeMs} ms after the filler went (${(freeAfterDelete / MIB).toFixed(1)} MiB free)`);
  await probe.writer.complete({ result: "succeeded", exitCode: 0 });

  // Phase 2: the disk fills to half the floor only. RocksDB could still write: the refusal is the floor's.
  await fillDisk(filler);
  await leaveFree(filler, mountPoint, floorBytes / 2);
  // Once the leader has read the free space (it polls), so the probe's line meets the floor and not RocksDB.
  let belowFloor = await readyz(leader.url);
  for (let i = 0; i < 50 && !/below storage\.min_free_bytes/.test(belowFloor.body); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    belowFloor = await readyz(leader.url);
  }
  expect(belowFloor.status).toBe(503);
  const floorProbe = probeWriter(leader.url, runId, "floor-probe");
  await until(async () => floorProbe.refusals.length > 0, 30_000).catch(async () => {
    throw new Error(
      `no refusal with ${((await freeBytes(mountPoint)) / MIB).toFixed(1)} MiB free: probe durable ${floorProbe.durable()}, readyz ${(await readyz(leader?.url ?? "")).body}`,
    );
  });
  expect(floorProbe.refusals.join("\n")).toMatch(/disk is full \(.*joblogs: .* MiB free on its filesystem, below storage\.min_free_bytes/);
  expect(belowFloor.body).toMatch(/free on its filesystem, below storage\.min_free_bytes/);
  expect(floorProbe.durable()).toBe(false);
  step(`floor refusal: ${floorProbe.refusals[0]}`);
  await rm(filler);
  await until(async () => floorProbe.durable(), 60_000);
  await floorProbe.writer.complete({ result: "succeeded", exitCode: 0 });

  // Phase 3: full again, then kill -9 while full.
  const refusedBeforeSecond = refusals();
  await fillDisk(filler);
  await until(async () => refusals() > refusedBeforeSecond, 60_000);
  // The workers stop producing so the test ends; what they hold is delivered after the restart.
  for (const w of workers) w.stop();
  await leader.kill();
  const ackedAtKill = workers.map((w) => w.acknowledgedCount);
  step(`killed while full; acked ${ackedAtKill.join(", ")}`);

  // The restart has only the floor free: what the leader reserved must be enough to reopen.
  await leaveFree(filler, mountPoint, floorBytes);
  const freeBeforeOpen = await freeBytes(mountPoint);
  await leader.restart();
  const openTookBytes = freeBeforeOpen - (await freeBytes(mountPoint));
  step(
    `reopened with ${(freeBeforeOpen / MIB).toFixed(1)} MiB free; the open took ${(openTookBytes / MIB).toFixed(2)} MiB; readyz ${(await readyz(leader.url)).status}`,
  );

  await rm(filler);
  const outcomes = await finishWorkers(workers);
  step("workers finished");
  for (const [i, o] of outcomes.entries()) expect(o.acknowledged.length).toBeGreaterThanOrEqual(ackedAtKill[i] ?? 0);
  const report = await checkRun(leader.url, runId, outcomes);
  expect(report).toMatchObject({ lost: 0, duplicated: 0, phantom: 0, reordered: 0 });
  for (const p of [probe, floorProbe]) {
    const lines = [p.line];
    expect(await checkRun(leader.url, runId, [{ task: p.task, written: lines, acknowledged: lines }])).toMatchObject({
      lost: 0,
      duplicated: 0,
      phantom: 0,
    });
  }
  await readyzTurns(leader.url, 200);

  // No corruption: a clean restart serves the same logs.
  await leader.stop();
  await leader.restart();
  const again = await checkRun(leader.url, runId, outcomes);
  expect(again).toEqual(report);

  const controlReport = await checkControl(leader.url, runId, control);

  recordScenario({
    scenario: "6 full disk (64 MiB tmpfs)",
    iterations: 1,
    report: sumReports([report]),
    recoveryMs: resumeMs,
    negativeControl: `forget worker: ${controlReport.lost} lost - flagged`,
    notes: `first refusal ${(firstRefusalMs / 1000).toFixed(2)} s after the disk filled (${ackedAfterFull} lines acknowledged meanwhile, in the WAL); /readyz 503 while full; ingest resumed in place ${(resumeMs / 1000).toFixed(2)} s after the filler went (${(freeAfterDelete / MIB).toFixed(1)} MiB free); after kill -9 while full the leader reopened with ${(freeBeforeOpen / MIB).toFixed(1)} MiB free (floor ${(floorBytes / MIB).toFixed(1)} MiB; the open took ${(openTookBytes / MIB).toFixed(2)} MiB)`,
  });
});
