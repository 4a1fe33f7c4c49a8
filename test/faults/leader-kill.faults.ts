import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, test } from "vitest";
import { until } from "../helpers/task-logs.js";
import { recordScenario } from "./harness/fault-results.js";
import { LeaderProcess } from "./harness/leader-process.js";
import { ackedTotal, checkControl, checkRun, finishWorkers, spread, startWorkers } from "./harness/scenario-run.js";
import { UnsafeWorker } from "./harness/unsafe-worker.js";

/**
 * Scenario 1: `kill -9` of the leader at random moments while 8 workers push,
 * restarted at once, at least 50 times: nothing acknowledged is lost, nothing is
 * stored twice, nothing is reordered.
 */

const KILLS = Number(process.env.JOBLOG_FAULTS_KILLS ?? 50);

let dir: string | undefined;
let leader: LeaderProcess | undefined;

afterAll(async () => {
  await leader?.kill();
  if (dir) await rm(dir, { recursive: true, force: true });
});

// Each cycle costs a leader start (~1-3 s here, more on a loaded machine): allowed 15 minutes.
test(`kill -9 of the leader ${KILLS} times during ingest from 8 workers: 0 lost, 0 duplicated, 0 reordered`, {
  timeout: 900_000,
}, async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-faults-kill-"));
  leader = await LeaderProcess.start(dir, join(dir, "data"));
  const runId = "kill-9";
  // Streams end (and are acknowledged) every 128 KiB, so each short life of the leader sees acknowledgements.
  const workers = startWorkers(leader.url, runId, 8, { settings: { streamMaxBytes: 128 * 1024, backoffMaxMs: 300 } });
  const control = new UnsafeWorker(leader.url, runId, "control-renumber", "renumber");
  const recoveries: number[] = [];
  const restarts: number[] = [];
  for (let kill = 0; kill < KILLS; kill++) {
    // Each life of the leader stores something before it dies, so every kill lands mid-ingest.
    const before = ackedTotal(workers);
    const startedAt = Date.now();
    await until(async () => ackedTotal(workers) > before, 30_000);
    recoveries.push(Date.now() - startedAt);
    await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 400));
    await leader.kill();
    const killedAt = Date.now();
    await leader.restart();
    restarts.push(Date.now() - killedAt);
  }
  const outcomes = await finishWorkers(workers);
  const report = await checkRun(leader.url, runId, outcomes);
  expect(report).toMatchObject({ lost: 0, duplicated: 0, phantom: 0, reordered: 0 });
  expect(report.acknowledged).toBe(outcomes.reduce((n, o) => n + o.written.length, 0));

  const controlReport = await checkControl(leader.url, runId, control);
  const { median, max } = spread(recoveries);
  recordScenario({
    scenario: "1 kill -9 leader, 8 workers",
    iterations: KILLS,
    report,
    recoveryMs: max,
    negativeControl: `renumbering worker: ${controlReport.duplicated} duplicated - flagged`,
    notes: `kill to listening again: median ${spread(restarts).median} ms, max ${spread(restarts).max} ms; listening to next acknowledgement: median ${median} ms, max ${max} ms`,
  });
});
