import { status } from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, expect, test } from "vitest";
import { LeaderClient } from "../../src/client/leader-client.js";
import { TaskLogWriter } from "../../src/worker/task-log-writer.js";
import { expectedRecord } from "../helpers/expected-jsonl.js";
import { FakeKms, useTestAwsCredentials } from "../helpers/fake-kms.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import { pushTask, readAll, until } from "../helpers/task-logs.js";

let kms: FakeKms;
let keyArn: string;
let restoreEnv: () => void;

beforeAll(async () => {
  restoreEnv = useTestAwsCredentials();
  kms = await FakeKms.start();
  keyArn = kms.createKey("alias/joblog");
});
afterAll(async () => {
  await kms.close();
  restoreEnv();
});

let f: LeaderFixture | undefined;
let client: LeaderClient | undefined;
afterEach(async () => {
  kms.recover();
  client?.close();
  client = undefined;
  await f?.dispose();
  f = undefined;
});

function awsLeader(keyId = "alias/joblog") {
  return startTestLeader({
    encryption: { provider: "aws", aws: { key_id: keyId, region: "us-east-1", endpoint: kms.endpoint, timeout_ms: 1000 } },
  });
}

const FAST_RETRY = { settings: { backoffInitialMs: 50, backoffMaxMs: 300 } };

test("a run's data key comes from GenerateDataKey with its context; after a restart Decrypt unwraps it", async () => {
  f = await awsLeader();
  const expected = await pushTask(f.url, "kms-run", "build", 200, { workspace: "acme" });
  const generated = kms.calls.filter((c) => c.operation === "GenerateDataKey" && c.context.run === "kms-run");
  expect(generated).toEqual([
    { operation: "GenerateDataKey", keyId: "alias/joblog", context: { workspace: "acme", run: "kms-run" }, ok: true },
  ]);
  expect(f.leader.dataDir).toBeTruthy();

  await f.restart();
  client = new LeaderClient(f.url);
  expect(await readAll(client, "kms-run", "build")).toBe(expected);
  const decrypts = kms.calls.filter((c) => c.operation === "Decrypt" && c.context.run === "kms-run");
  expect(decrypts.length).toBeGreaterThan(0);
  expect(decrypts.every((c) => c.ok && c.context.workspace === "acme")).toBe(true);
});

test("KMS down during ingest: a run with a cached key goes on, a new run waits, and every line lands once KMS is back", async () => {
  f = await awsLeader();
  const cached = TaskLogWriter.open({ leader: f.url, runId: "kms-cached", task: "build", ...FAST_RETRY });
  let expectCached = "";
  let expectFresh = "";
  const ts = Date.UTC(2026, 0, 1);
  cached.write("stdout", "before the outage", ts);
  expectCached += expectedRecord(ts, "stdout", "build", "before the outage");
  await cached.flush();

  kms.mode = "fail";
  // Opened during the outage: its run has no data key yet.
  const fresh = TaskLogWriter.open({ leader: f.url, runId: "kms-new", task: "build", ...FAST_RETRY });
  for (let i = 0; i < 500; i++) {
    cached.write("stdout", `cached ${i}`, ts + i);
    expectCached += expectedRecord(ts + i, "stdout", "build", `cached ${i}`);
    fresh.write("stderr", `fresh ${i}`, ts + i);
    expectFresh += expectedRecord(ts + i, "stderr", "build", `fresh ${i}`);
  }
  await cached.complete({ result: "succeeded", exitCode: 0 });
  // The new run is refused until KMS answers; its worker keeps retrying.
  await until(async () => kms.calls.filter((c) => c.operation === "GenerateDataKey" && c.context.run === "kms-new").length >= 4);
  client = new LeaderClient(f.url);
  await expect(client.openTask({ task: { runId: "kms-other", task: "t" } })).rejects.toMatchObject({
    code: status.UNAVAILABLE,
    details: expect.stringMatching(/cannot get the data key of run kms-other: AWS KMS key alias\/joblog is unreachable/),
  });

  kms.recover();
  await fresh.complete({ result: "succeeded", exitCode: 0 });
  expect(await readAll(client, "kms-cached", "build")).toBe(expectCached);
  expect(await readAll(client, "kms-new", "build")).toBe(expectFresh);
  const events = (await readAll(client, "kms-new", "_server")).trim().split("\n");
  expect(events).toHaveLength(1);
  expect(JSON.parse(events[0] as string).line).toMatch(
    /^the key provider was unreachable for this run from \S+ for [\d.]+s: \d+ request\(s\) were refused with UNAVAILABLE and retried; last error: AWS KMS key alias\/joblog is unreachable/,
  );
  expect(await readAll(client, "kms-cached", "_server")).toBe("");
});

test("a stalled KMS is cut off at encryption.aws.timeout_ms and reported UNAVAILABLE", async () => {
  f = await awsLeader();
  kms.mode = "stall";
  client = new LeaderClient(f.url);
  await expect(client.openTask({ task: { runId: "kms-stall", task: "t" } })).rejects.toMatchObject({
    code: status.UNAVAILABLE,
    details: expect.stringContaining("cannot get the data key of run kms-stall"),
  });
});

test("rotation to another KMS key re-wraps every data key; with the old key disabled a restart reads everything", async () => {
  f = await awsLeader();
  const expected = new Map<string, string>();
  for (const run of ["kr-a", "kr-b"]) expected.set(run, await pushTask(f.url, run, "build", 100));
  const second = kms.createKey("alias/joblog-2");
  await f.restart({ config: (c) => ({ ...c, encryption: { ...c.encryption, aws: { ...c.encryption.aws, key_id: "alias/joblog-2" } } }) });
  client = new LeaderClient(f.url);
  const rotated = await client.rotateKeys();
  expect(rotated.rewrapped).toBe(2n);
  expect(rotated.provider).toBe("AWS KMS key alias/joblog-2");
  expect(kms.calls.filter((c) => c.operation === "Encrypt").every((c) => c.keyId === "alias/joblog-2")).toBe(true);
  // Running it again finds them current.
  expect((await client.rotateKeys()).unchanged).toBe(2n);

  kms.disableKey(keyArn);
  client.close();
  await f.restart();
  client = new LeaderClient(f.url);
  for (const [run, text] of expected) expect(await readAll(client, run, "build")).toBe(text);
  expect(second).toMatch(/^arn:aws:kms:/);
});

test("a wrong KMS key id is a clear refusal, not a retry loop", async () => {
  f = await awsLeader("alias/no-such-key");
  client = new LeaderClient(f.url);
  await expect(client.openTask({ task: { runId: "kms-wrong", task: "t" } })).rejects.toMatchObject({
    code: status.FAILED_PRECONDITION,
    details: expect.stringContaining("AWS KMS key alias/no-such-key refused GenerateDataKey: NotFoundException"),
  });
});
