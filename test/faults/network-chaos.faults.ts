import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, test } from "vitest";
import { until } from "../helpers/task-logs.js";
import { type ChaosProxy, startChaosProxy } from "./harness/chaos-proxy.js";
import { recordScenario } from "./harness/fault-results.js";
import { LeaderProcess } from "./harness/leader-process.js";
import { ackedTotal, checkControl, checkRun, finishWorkers, startWorkers } from "./harness/scenario-run.js";
import { UnsafeWorker } from "./harness/unsafe-worker.js";

/**
 * Scenario 2: workers reach the leader through a proxy that cuts connections
 * mid-batch, resets them, stalls them and slices writes. Same criterion as the
 * kills; the memory of the leader and of the workers stays flat.
 */

const CHAOS_MS = Number(process.env.JOBLOG_FAULTS_CHAOS_MS ?? 40_000);
const MIB = 1024 * 1024;

let dir: string | undefined;
let leader: LeaderProcess | undefined;
let proxy: ChaosProxy | undefined;

afterAll(async () => {
  await proxy?.close();
  await leader?.kill();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("a proxy that cuts, resets, stalls and slices: 0 lost, 0 duplicated, 0 reordered, memory flat", async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-faults-net-"));
  leader = await LeaderProcess.start(dir, join(dir, "data"));
  proxy = await startChaosProxy(Number(new URL(leader.url).port));
  const runId = "network-chaos";
  // 4 MiB buffers: what the workers may hold by design stays small next to the bound on their memory.
  const workers = startWorkers(proxy.url, runId, 8, {
    settings: { streamMaxBytes: 128 * 1024, backoffMaxMs: 300, bufferMaxBytes: 4 * MIB },
  });
  const control = new UnsafeWorker(proxy.url, runId, "control-renumber", "renumber");
  await until(async () => ackedTotal(workers) > 0, 30_000);
  const leaderRssBefore = await leader.rssBytes();
  const workersRssBefore = process.memoryUsage().rss;

  const strikes = { cut: 0, reset: 0, stall: 0, none: 0 };
  const end = Date.now() + CHAOS_MS;
  while (Date.now() < end) {
    strikes[proxy.strike()]++;
    await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 300));
  }
  proxy.sliceShare = 0;
  const leaderRssAfter = await leader.rssBytes();
  const workersRssAfter = process.memoryUsage().rss;
  const calmAt = Date.now();
  await Promise.all(workers.map((w) => w.writer.flush()));
  const recoveryMs = Date.now() - calmAt;

  const outcomes = await finishWorkers(workers);
  const report = await checkRun(leader.url, runId, outcomes);
  expect(report).toMatchObject({ lost: 0, duplicated: 0, phantom: 0, reordered: 0 });
  expect(strikes.cut + strikes.reset).toBeGreaterThan(10);
  // Flat, with room for noise: a leak of what passed through (hundreds of MB) would break it.
  expect(leaderRssAfter).toBeLessThan(leaderRssBefore * 1.5 + 100 * MIB);
  // The workers share the test process (and its garbage from earlier files): bounded by their buffers plus slack.
  expect(workersRssAfter).toBeLessThan(workersRssBefore + 8 * 4 * MIB + 200 * MIB);

  const controlReport = await checkControl(leader.url, runId, control);
  const mib = (n: number) => `${Math.round(n / MIB)} MiB`;
  recordScenario({
    scenario: "2 TCP proxy chaos",
    iterations: strikes.cut + strikes.reset + strikes.stall,
    report,
    recoveryMs,
    negativeControl: `renumbering worker: ${controlReport.duplicated} duplicated - flagged`,
    notes: `${strikes.cut} cuts, ${strikes.reset} resets, ${strikes.stall} stalls in ${CHAOS_MS / 1000} s; leader RSS ${mib(leaderRssBefore)} -> ${mib(leaderRssAfter)}, workers' process RSS ${mib(workersRssBefore)} -> ${mib(workersRssAfter)}`,
  });
});
