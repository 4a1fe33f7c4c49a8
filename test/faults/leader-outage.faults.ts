import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, test } from "vitest";
import { until } from "../helpers/task-logs.js";
import { recordScenario } from "./harness/fault-results.js";
import { LeaderProcess } from "./harness/leader-process.js";
import { ackedTotal, checkControl, checkRun, finishWorkers, startWorkers } from "./harness/scenario-run.js";
import { UnsafeWorker } from "./harness/unsafe-worker.js";

/**
 * Scenario 3: the leader stopped (SIGTERM) for a minute while the workers keep
 * producing; once it is back, everything arrives, once and in order.
 */

const OUTAGE_MS = Number(process.env.JOBLOG_FAULTS_OUTAGE_MS ?? 60_000);

let dir: string | undefined;
let leader: LeaderProcess | undefined;

afterAll(async () => {
  await leader?.kill();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test(`leader stopped for ${OUTAGE_MS / 1000} s while 8 workers keep producing: everything arrives afterwards`, async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-faults-outage-"));
  leader = await LeaderProcess.start(dir, join(dir, "data"));
  const runId = "outage";
  // Small memory buffers and a spool: the outage is ridden out on disk, not in memory.
  const spoolDir = join(dir, "spool");
  await mkdir(spoolDir);
  const workers = startWorkers(leader.url, runId, 8, {
    settings: { streamMaxBytes: 256 * 1024, bufferMaxBytes: 512 * 1024, spoolDir },
  });
  const control = new UnsafeWorker(leader.url, runId, "control-renumber", "renumber");
  await until(async () => ackedTotal(workers) > 0, 30_000);

  await leader.stop();
  const writtenAtStop = workers.reduce((n, w) => n + w.count, 0);
  await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS));
  const writtenDuringOutage = workers.reduce((n, w) => n + w.count, 0) - writtenAtStop;
  const spoolFiles = (await readdir(spoolDir, { recursive: true })).length;
  await leader.restart();
  const backAt = Date.now();
  await Promise.all(workers.map((w) => w.writer.flush()));
  const recoveryMs = Date.now() - backAt;

  const outcomes = await finishWorkers(workers);
  const report = await checkRun(leader.url, runId, outcomes);
  expect(report).toMatchObject({ lost: 0, duplicated: 0, phantom: 0, reordered: 0 });
  expect(report.acknowledged).toBe(outcomes.reduce((n, o) => n + o.written.length, 0));
  expect(writtenDuringOutage).toBeGreaterThan(0);
  expect(spoolFiles).toBeGreaterThan(8);
  expect(await readdir(spoolDir)).toEqual([]);

  const controlReport = await checkControl(leader.url, runId, control);
  recordScenario({
    scenario: `3 leader down ${OUTAGE_MS / 1000} s`,
    iterations: 1,
    report,
    recoveryMs,
    negativeControl: `renumbering worker: ${controlReport.duplicated} duplicated - flagged`,
    notes: `${writtenDuringOutage} lines written while the leader was down (spooled to disk past 512 KiB per worker), delivered ${(recoveryMs / 1000).toFixed(1)} s after it was back`,
  });
});
