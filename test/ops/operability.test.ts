import { mkdtemp, open, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import {
  type HealthCheckRequest,
  HealthCheckRequestSchema,
  type HealthCheckResponse,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as Serving,
} from "../../gen/grpc/health/v1/health_pb.js";
import { LeaderClient } from "../../src/client/leader-client.js";
import { configSchema } from "../../src/config/config-schema.js";
import { startLeader } from "../../src/leader/leader.js";
import { createLeaderLog } from "../../src/ops/leader-log.js";
import { TaskLogWriter } from "../../src/worker/task-log-writer.js";
import { FakeKms, useTestAwsCredentials } from "../helpers/fake-kms.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import { sample } from "../helpers/metrics-sample.js";
import { type S3Proxy, startS3Proxy } from "../helpers/s3-proxy.js";
import { S3RVER_CREDENTIALS, type S3Server, startS3Server } from "../helpers/s3-server.js";
import { pushTask, until } from "../helpers/task-logs.js";
import { startTcpProxy } from "../helpers/tcp-proxy.js";

/** Health, readiness, metrics, keepalive and stream age of a real leader, through real clients. */

async function get(url: string): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get("content-type") ?? "", body: await res.text() };
}

/** grpc.health.v1.Health/Check as a Kubernetes gRPC probe or grpc_health_probe makes it: plain grpc-js. */
function healthCheck(address: string, service: string): Promise<HealthCheckResponse> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  return new Promise<HealthCheckResponse>((resolve, reject) => {
    client.makeUnaryRequest(
      "/grpc.health.v1.Health/Check",
      (m: HealthCheckRequest) => Buffer.from(toBinary(HealthCheckRequestSchema, m)),
      (b: Buffer) => fromBinary(HealthCheckResponseSchema, b),
      create(HealthCheckRequestSchema, { service }),
      { deadline: Date.now() + 10_000 },
      (err, res) => (err ? reject(err) : resolve(res as HealthCheckResponse)),
    );
  }).finally(() => client.close());
}

describe("a leader with the default configuration", () => {
  let f: LeaderFixture;
  beforeAll(async () => {
    f = await startTestLeader();
  });
  afterAll(async () => {
    await f?.dispose();
  });

  test("/healthz answers ok and /readyz lists the stores as ready", async () => {
    expect(await get(`${f.url}/healthz`)).toMatchObject({ status: 200, body: '{"status":"ok"}' });
    const ready = await get(`${f.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({
      status: "ready",
      checks: [
        { name: "log store", ok: true },
        { name: "meta store", ok: true },
      ],
    });
    expect((await fetch(`${f.url}/metrics`, { method: "POST" })).status).toBe(405);
  });

  test("grpc.health.v1 Check answers SERVING for the server and its services, NOT_FOUND for others", async () => {
    expect((await healthCheck(f.leader.address, "")).status).toBe(Serving.SERVING);
    expect((await healthCheck(f.leader.address, "joblog.v1.LogService")).status).toBe(Serving.SERVING);
    const err = await healthCheck(f.leader.address, "no.such.Service").catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
  });

  test("/metrics counts the lines and bytes stored, Push streams, commits and store sizes", async () => {
    const before = (await get(`${f.url}/metrics`)).body;
    const expected = await pushTask(f.url, "metrics-run", "build", 250);
    // A resend of stored lines is acknowledged but not counted again.
    const client = new LeaderClient(f.url);
    try {
      const opened = await client.openTask({ task: { runId: "metrics-run", task: "build" } });
      expect(opened.durableSeq).toBe(250n);
    } finally {
      client.close();
    }
    const { status, type, body } = await get(`${f.url}/metrics`);
    expect(status).toBe(200);
    expect(type).toContain("text/plain");
    const delta = (series: string) => (sample(body, series) ?? 0) - (sample(before, series) ?? 0);
    expect(delta("joblog_ingested_lines_total")).toBe(250);
    expect(delta("joblog_ingested_bytes_total")).toBe(Buffer.byteLength(expected));
    expect(delta("joblog_push_streams_total")).toBeGreaterThanOrEqual(1);
    expect(delta("joblog_commit_latency_seconds_count")).toBeGreaterThanOrEqual(1);
    expect(sample(body, "joblog_push_streams")).toBe(0);
    expect(sample(body, "joblog_tail_subscribers")).toBe(0);
    expect(sample(body, "joblog_archive_backlog_runs")).toBe(0);
    expect(sample(body, 'joblog_store_size_bytes{store="log"}')).toBeGreaterThan(0);
    expect(sample(body, "joblog_process_resident_memory_bytes")).toBeGreaterThan(0);
    // Ids are not labels: their number is unbounded.
    expect(body).not.toContain("metrics-run");
  });

  test("a writer ends each Push stream at worker.stream_max_age_ms, so slow output is acknowledged without a flush", async () => {
    const writer = TaskLogWriter.open({ leader: f.url, runId: "age-run", task: "slow", settings: { streamMaxAgeMs: 200 } });
    try {
      writer.write("stdout", "first");
      await until(async () => writer.durableSeq === 1);
      writer.write("stdout", "second");
      await until(async () => writer.durableSeq === 2);
    } finally {
      await writer.complete({ result: "succeeded", exitCode: 0 });
    }
  });
});

test("the leader pings HTTP/2 connections and closes one whose peer stopped answering, ending its tail", async () => {
  const f = await startTestLeader({ server: { keepalive_time_ms: 200, keepalive_timeout_ms: 200 } });
  const proxy = await startTcpProxy(f.leader.port);
  const client = new LeaderClient(proxy.url);
  try {
    const writer = TaskLogWriter.open({ leader: f.url, runId: "ka-run", task: "open-task" });
    writer.write("stdout", "one line");
    await writer.flush();
    // The task is not complete, so the tail waits for more after the line it has.
    const stopTail = new AbortController();
    const tailing = (async () => {
      for await (const _ of client.tail({ runId: "ka-run", task: "open-task" }, { signal: stopTail.signal })) {
        // records are not the point here
      }
    })().catch((err: unknown) => err);
    const subscribers = async () => sample((await get(`${f.url}/metrics`)).body, "joblog_tail_subscribers");
    await until(async () => (await subscribers()) === 1);
    proxy.stallAll();
    await until(async () => (await subscribers()) === 0);
    // The client side of the stalled connection would only notice at its own keepalive (30 s).
    stopTail.abort();
    await tailing;
    await writer.abort();
  } finally {
    client.close();
    await proxy.close();
    await f.dispose();
  }
});

describe("readiness follows the archive and the KMS", () => {
  let s3: S3Server;
  let s3proxy: S3Proxy;
  let kms: FakeKms;
  let f: LeaderFixture | undefined;
  let restoreEnv: () => void;

  beforeAll(async () => {
    restoreEnv = useTestAwsCredentials();
    s3 = await startS3Server();
    s3proxy = await startS3Proxy(s3.port);
    kms = await FakeKms.start();
    kms.createKey("alias/joblog");
  });
  afterEach(async () => {
    kms.recover();
    s3proxy.failing = false;
    await f?.dispose();
    f = undefined;
  });
  afterAll(async () => {
    await kms?.close();
    await s3proxy?.close();
    await s3?.close();
    restoreEnv();
  });

  const readiness = async (url: string) => {
    const res = await get(`${url}/readyz`);
    const body = JSON.parse(res.body) as { checks: Array<{ name: string; ok: boolean; error?: string }> };
    return { code: res.status, checks: body.checks };
  };

  test("an S3 archive that fails makes /readyz 503 naming the archive and health NOT_SERVING, until it answers again", async () => {
    f = await startTestLeader({
      log_storage: {
        retry_attempts: 1,
        archive: { type: "s3", bucket: s3.bucket, prefix: "logs/", endpoint: s3proxy.endpoint, ...S3RVER_CREDENTIALS },
      },
    });
    const url = f.url;
    expect((await readiness(url)).code).toBe(200);
    s3proxy.failing = true;
    // A report is reused for two seconds: poll until the new one.
    await until(async () => (await readiness(url)).code === 503, 15_000);
    const down = await readiness(url);
    expect(down.checks.find((c) => c.name === "archive")).toMatchObject({ ok: false, error: expect.stringContaining("s3://") });
    expect((await healthCheck(f.leader.address, "")).status).toBe(Serving.NOT_SERVING);
    s3proxy.failing = false;
    await until(async () => (await readiness(url)).code === 200, 15_000);
  });

  test("an unreachable KMS makes /readyz 503 naming the kms, and the failed calls are counted", async () => {
    f = await startTestLeader({
      encryption: { provider: "aws", aws: { key_id: "alias/joblog", region: "us-east-1", endpoint: kms.endpoint, timeout_ms: 500 } },
    });
    const url = f.url;
    expect((await readiness(url)).code).toBe(200);
    kms.mode = "fail";
    await until(async () => (await readiness(url)).code === 503, 15_000);
    const down = await readiness(url);
    expect(down.checks.find((c) => c.name === "kms")).toMatchObject({ ok: false, error: expect.stringContaining("unreachable") });
    const metrics = (await get(`${url}/metrics`)).body;
    expect(sample(metrics, 'joblog_kms_calls_total{operation="GenerateDataKey",outcome="unavailable"}')).toBeGreaterThan(0);
    expect(sample(metrics, 'joblog_kms_calls_total{operation="GenerateDataKey",outcome="ok"}')).toBeGreaterThan(0);
  });
});

test("the leader's own log is one JSON object per line, with ids but no text of the tasks' lines", async () => {
  const dir = await mkdtemp(join(tmpdir(), "joblog-log-test-"));
  const file = await open(join(dir, "leader.log"), "w");
  try {
    const log = createLeaderLog({ level: "info", fd: file.fd });
    const config = configSchema.parse({ server: { listen: "127.0.0.1:0", data_dir: join(dir, "data") } });
    const leader = await startLeader(config, log);
    const url = `http://${leader.address}`;
    const client = new LeaderClient(url);
    try {
      const writer = TaskLogWriter.open({ leader: url, runId: "log-run", task: "build" });
      writer.write("stdout", "SECRET-LOOKING-MARKER-42 in the task's output");
      await writer.complete({ result: "succeeded", exitCode: 0 });
      // An operator action is an event the leader logs.
      await client.rotateKeys();
    } finally {
      client.close();
      await leader.stop();
    }
    const text = await readFile(join(dir, "leader.log"), "utf8");
    const lines = text.split("\n").filter((l) => l !== "");
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      const event = JSON.parse(line) as { level: number; time: string; msg: string; name: string };
      expect(event).toMatchObject({ name: "joblog-leader", level: expect.any(Number), msg: expect.any(String) });
      expect(new Date(event.time).toISOString()).toBe(event.time);
    }
    expect(lines.some((l) => l.includes("key rotation finished"))).toBe(true);
    expect(text).not.toContain("SECRET-LOOKING-MARKER-42");

    // An error travels with its event as a structured field.
    createLeaderLog({ level: "info", fd: file.fd })("archive flush failed", new Error("boom"));
    const last = (await readFile(join(dir, "leader.log"), "utf8")).trim().split("\n").at(-1) ?? "";
    expect(JSON.parse(last)).toMatchObject({ level: 50, msg: "archive flush failed", err: { type: "Error", message: "boom" } });
  } finally {
    await file.close();
    await rm(dir, { recursive: true, force: true });
  }
});
