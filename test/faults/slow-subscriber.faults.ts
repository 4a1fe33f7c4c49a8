import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, test } from "vitest";
import { LeaderClient } from "../../src/client/leader-client.js";
import { until } from "../helpers/task-logs.js";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.js";
import { sumReports } from "./harness/delivery-checker.js";
import { recordScenario } from "./harness/fault-results.js";
import { LeaderProcess } from "./harness/leader-process.js";
import { checkControl, checkRun, finishWorkers, startWorkers } from "./harness/scenario-run.js";
import { UnsafeWorker } from "./harness/unsafe-worker.js";

/**
 * Scenario 7: a Tail subscriber that never reads must not slow ingest: the same
 * load is pushed without it, with it, and without it again, and the throughput
 * with it is compared with the mean of the two without.
 */

const LINES_PER_WORKER = Number(process.env.JOBLOG_FAULTS_SLOW_LINES ?? 100_000);
const WORKERS = 4;

let dir: string | undefined;
let leader: LeaderProcess | undefined;
let proxy: TcpProxy | undefined;

afterAll(async () => {
  await proxy?.close();
  await leader?.kill();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Pushes the load as fast as the leader takes it; returns lines per second and the check of what arrived. */
async function load(url: string, runId: string, lines: number, whileRunning?: () => Promise<void>) {
  const started = Date.now();
  const workers = startWorkers(url, runId, WORKERS, { linesPerTick: 2000, tickMs: 1, maxLines: lines });
  await whileRunning?.();
  await Promise.all(workers.map((w) => w.produced));
  const outcomes = await finishWorkers(workers);
  const linesPerSecond = (WORKERS * lines) / ((Date.now() - started) / 1000);
  return { linesPerSecond, report: await checkRun(url, runId, outcomes) };
}

test("a subscriber that never reads leaves ingest throughput where it was", async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-faults-slow-"));
  leader = await LeaderProcess.start(dir, join(dir, "data"));
  const url = leader.url;
  const client = new LeaderClient(url);
  const stuck: Array<AsyncGenerator<unknown>> = [];
  try {
    // Warm-up: the first load of a fresh leader process runs before its JIT has.
    const warmUp = await load(url, "warm-up", LINES_PER_WORKER / 4);
    const before = await load(url, "without-1", LINES_PER_WORKER);
    const withSubscriber = await load(url, "with-subscriber", LINES_PER_WORKER, async () => {
      // One stuck Tail per task: each takes its first message and is never read again.
      for (let i = 0; i < WORKERS; i++) {
        await until(async () => {
          const tail = client.tail({ runId: "with-subscriber", task: `w${i}`, offset: 0n });
          try {
            await tail.next();
            stuck.push(tail);
            return true;
          } catch {
            return false; // the task has no log yet
          }
        }, 30_000);
      }
    });
    const after = await load(url, "without-2", LINES_PER_WORKER);
    const baseline = (before.linesPerSecond + after.linesPerSecond) / 2;
    const ratio = withSubscriber.linesPerSecond / baseline;
    const report = sumReports([warmUp.report, before.report, withSubscriber.report, after.report]);
    expect(report).toMatchObject({ lost: 0, duplicated: 0, phantom: 0, reordered: 0 });
    // The target is within 10 %; the assertion only catches a stall, not noise on a shared machine.
    expect(ratio).toBeGreaterThan(0.5);

    // Negative control: a renumbering worker behind a proxy whose connections are cut once.
    proxy = await startTcpProxy(Number(new URL(url).port));
    const control = new UnsafeWorker(proxy.url, "slow-control", "control-renumber", "renumber");
    // The cut comes once the leader holds lines the control has not seen acknowledged: its resend then repeats them.
    await until(async () => {
      const opened = await client.openTask({ task: { runId: "slow-control", task: control.task } }).catch(() => undefined);
      return opened !== undefined && Number(opened.durableSeq) > control.acknowledgedCount;
    }, 30_000);
    proxy.cutAll();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const controlReport = await checkControl(url, "slow-control", control);

    const k = (n: number) => `${Math.round(n / 1000)}k lines/s`;
    recordScenario({
      scenario: "7 subscriber that never reads",
      iterations: 4,
      report,
      recoveryMs: 0,
      negativeControl: `renumbering worker, one cut: ${controlReport.duplicated} duplicated - flagged`,
      notes: `ingest ${k(before.linesPerSecond)} and ${k(after.linesPerSecond)} without, ${k(withSubscriber.linesPerSecond)} with ${WORKERS} stuck tails: ${(ratio * 100).toFixed(0)} % of baseline`,
    });
  } finally {
    for (const tail of stuck) await tail.return(undefined);
    client.close();
  }
});
