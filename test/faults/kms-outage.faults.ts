import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, test } from "vitest";
import { FakeKms } from "../helpers/fake-kms.js";
import { until } from "../helpers/task-logs.js";
import { sumReports } from "./harness/delivery-checker.js";
import { recordScenario } from "./harness/fault-results.js";
import { LeaderProcess } from "./harness/leader-process.js";
import { ackedTotal, checkControl, checkRun, finishWorkers, startWorkers } from "./harness/scenario-run.js";
import { UnsafeWorker } from "./harness/unsafe-worker.js";

/**
 * Scenario 5: the KMS unreachable for 30 s (first stalling, then failing) while
 * workers push to a run whose key is cached and new runs start, which need a new
 * data key: nothing is lost; the new runs' lines arrive once the KMS is back.
 */

const OUTAGE_MS = Number(process.env.JOBLOG_FAULTS_KMS_OUTAGE_MS ?? 30_000);

let dir: string | undefined;
let leader: LeaderProcess | undefined;
let kms: FakeKms | undefined;

afterAll(async () => {
  await leader?.kill();
  await kms?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test(`KMS unreachable for ${OUTAGE_MS / 1000} s: nothing lost, new runs start once it is back`, async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-faults-kms-"));
  kms = await FakeKms.start();
  const keyId = kms.createKey("alias/joblog");
  leader = await LeaderProcess.start(
    dir,
    join(dir, "data"),
    { encryption: { provider: "aws", aws: { key_id: keyId, region: "us-east-1", endpoint: kms.endpoint, timeout_ms: 1000 } } },
    { AWS_ACCESS_KEY_ID: "AKIATESTTESTTESTTEST", AWS_SECRET_ACCESS_KEY: "test-secret", AWS_EC2_METADATA_DISABLED: "true" },
  );
  const settings = { settings: { streamMaxBytes: 256 * 1024, backoffMaxMs: 1000 } };
  const running = startWorkers(leader.url, "kms-running", 4, settings);
  await until(async () => ackedTotal(running) > 0, 30_000);

  kms.mode = "stall";
  const outageStart = Date.now();
  // New runs need a data key from the KMS that is not answering.
  const fresh = [1, 2, 3, 4].map((n) => startWorkers(leader?.url ?? "", `kms-new-${n}`, 1, settings)[0] as (typeof running)[number]);
  const control = new UnsafeWorker(leader.url, "kms-control", "control-forget", "forget");
  await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS / 2));
  kms.mode = "fail";
  await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS - (Date.now() - outageStart)));
  const ackedFreshDuringOutage = ackedTotal(fresh);
  kms.recover();
  const backAt = Date.now();
  await Promise.all([...running, ...fresh].map((w) => w.writer.flush()));
  const recoveryMs = Date.now() - backAt;

  const reports = [await checkRun(leader.url, "kms-running", await finishWorkers(running))];
  for (const [i, w] of fresh.entries()) reports.push(await checkRun(leader.url, `kms-new-${i + 1}`, await finishWorkers([w])));
  const report = sumReports(reports);
  expect(report).toMatchObject({ lost: 0, duplicated: 0, phantom: 0, reordered: 0 });
  expect(ackedFreshDuringOutage).toBe(0);

  const controlReport = await checkControl(leader.url, "kms-control", control);
  recordScenario({
    scenario: `5 KMS down ${OUTAGE_MS / 1000} s`,
    iterations: 1,
    report,
    recoveryMs,
    negativeControl: `forget worker: ${controlReport.lost} lost - flagged`,
    notes: `the running run kept its cached key and its acknowledgements; the 4 runs started in the outage had none acknowledged until the KMS was back (${kms.calls.filter((c) => !c.ok).length} failed KMS calls)`,
  });
});
