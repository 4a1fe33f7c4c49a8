import { gunzipSync } from "node:zlib";
import { GetObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Result } from "../../gen/joblog/v1/log_pb.js";
import { KvStore } from "../../src/store/kv-store.js";
import { chunkRange, taskStateKey } from "../../src/store/log-keys.js";
import { decodeTaskLogState } from "../../src/store/task-log-state.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import {
  batchOf,
  createGrpcLogClient,
  type GrpcLogClient,
  messages,
  parseRecords,
  readAll,
  tailToEnd,
  testLines,
} from "../helpers/log-service-client.js";
import { type S3Proxy, startS3Proxy } from "../helpers/s3-proxy.js";
import { S3RVER_CREDENTIALS, type S3Server, startS3Server } from "../helpers/s3-server.js";

/** The S3 archive against s3rver, through a proxy that counts bytes and can fail every request. */

const BASE_TS = Date.UTC(2025, 1, 12, 10, 56, 45, 123);
const PREFIX = "logs/";

let s3: S3Server;
let proxy: S3Proxy;
let sdk: S3Client;

beforeAll(async () => {
  s3 = await startS3Server();
  proxy = await startS3Proxy(s3.port);
  sdk = new S3Client({
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: S3RVER_CREDENTIALS.access_key_id, secretAccessKey: S3RVER_CREDENTIALS.secret_access_key },
  });
});

afterAll(async () => {
  sdk?.destroy();
  await proxy?.close();
  await s3?.close();
});

function archiveConfig(flushMs = 200) {
  return {
    log_storage: {
      flush_interval_ms: flushMs,
      retry_attempts: 2,
      retry_initial_ms: 20,
      retry_max_ms: 50,
      archive: {
        type: "s3" as const,
        bucket: s3.bucket,
        prefix: PREFIX,
        endpoint: proxy.endpoint,
        ...S3RVER_CREDENTIALS,
      },
    },
  };
}

async function listKeys(prefix: string): Promise<string[]> {
  const res = await sdk.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }));
  return (res.Contents ?? []).map((o) => o.Key ?? "");
}

async function getObject(key: string): Promise<Buffer | undefined> {
  try {
    const res = await sdk.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    return Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
  } catch {
    return undefined;
  }
}

/** Polls (bounded) until `key` exists in the bucket and the run's segments are gone. */
async function waitForRunObject(key: string): Promise<Buffer> {
  for (let i = 0; i < 400; i++) {
    const body = await getObject(key);
    const parts = await listKeys(key.replace(/\.jsonl\.gz$/, ".parts/"));
    if (body && parts.length === 0) return body;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${key} did not appear in 20 s`);
}

async function pushTask(
  client: GrpcLogClient["client"],
  runId: string,
  task: string,
  lines: number,
  complete: boolean,
  workflow = "deploy",
) {
  await client.push(
    messages({
      task: { runId, task, workspace: "acme", workflow },
      batch: batchOf(1, BASE_TS, testLines(task, lines)),
      ...(complete ? { complete: { result: Result.SUCCEEDED, exitCode: 0 } } : {}),
    }),
  );
}

function runKey(runId: string, startedAt: Date, workflow = "deploy"): string {
  const iso = startedAt.toISOString();
  const [date, time] = [iso.slice(0, 10), iso.slice(11, 19).replaceAll(":", "-")];
  return `${PREFIX}acme/${workflow}/${date.replaceAll("-", "/")}/${date}T${time}_${runId}.jsonl.gz`;
}

describe("S3 archive", () => {
  let f: LeaderFixture;
  let g: GrpcLogClient;

  beforeAll(async () => {
    f = await startTestLeader(archiveConfig());
    g = createGrpcLogClient(f.url);
  });

  afterAll(async () => {
    g?.close();
    await f?.dispose();
  });

  test("a completed run's object sits at the documented key and unzips to the JSONL Read returned before archival", async () => {
    const runId = "s3-layout-1";
    await pushTask(g.client, runId, "build", 300, false);
    await pushTask(g.client, runId, "test", 200, false);
    const before = {
      build: (await readAll(g.client, runId, "build")).text,
      test: (await readAll(g.client, runId, "test")).text,
    };
    await g.client.push(messages({ task: { runId, task: "build" }, complete: { result: Result.SUCCEEDED, exitCode: 0 } }));
    await g.client.push(messages({ task: { runId, task: "test" }, complete: { result: Result.FAILED, exitCode: 2 } }));
    const run = (await g.client.completeRun({ runId, result: Result.FAILED })).run;
    const startedAt = new Date(run?.startedAt ? timestampMs(run.startedAt) : 0);

    const key = runKey(runId, startedAt);
    const object = await waitForRunObject(key);
    const runLog = (await readAll(g.client, runId, "_run")).text;
    const serverEvents = (await readAll(g.client, runId, "_server")).text;
    expect(gunzipSync(object).toString("utf8")).toBe(before.build + before.test + runLog + serverEvents);
    expect(await listKeys(key.replace(".jsonl.gz", ""))).toEqual([key.replace(".jsonl.gz", ".index.json"), key]);

    // Read and Tail after archival answer the same bytes.
    expect((await readAll(g.client, runId, "build")).text).toBe(before.build);
    expect(await tailToEnd(g.client.tail({ runId, task: "test" }))).toBe(before.test);
    const build = Buffer.from(before.build);
    const mid = build.length >> 1;
    const r = await g.client.read({ runId, task: "build", offset: BigInt(mid), maxBytes: 1000 });
    const next = build.indexOf(0x0a, mid) + 1;
    expect(Number(r.offset)).toBe(next);
    expect(Buffer.from(r.data).equals(build.subarray(next, next + r.data.length))).toBe(true);
    expect(r.data.length).toBeLessThanOrEqual(1000);
    expect(r.complete).toBe(true);
  });
});

/** Opens a stopped leader's log store, to look at what it keeps. */
async function inspectStore(dataDir: string, runId: string, tasks: string[]) {
  const kv = await KvStore.open(`${dataDir}/joblogs`, { compression: true });
  try {
    const out: Record<string, { chunks: number; archived: boolean }> = {};
    for (const task of tasks) {
      let chunks = 0;
      for await (const _ of kv.entries(chunkRange(runId, task))) chunks++;
      const state = await kv.get(taskStateKey(runId, task));
      out[task] = { chunks, archived: state !== undefined && decodeTaskLogState(state).archived === true };
    }
    return out;
  } finally {
    await kv.close();
  }
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${what}: not seen in 20 s`);
}

const archiveEvents = (serverEvents: string) => parseRecords(serverEvents).filter((r) => r.line.startsWith("archive: upload"));

describe("S3 outage", () => {
  test("a failing final flush is retried, reported once, loses nothing, survives a restart, and drops buffers only once verified", async () => {
    const f = await startTestLeader(archiveConfig());
    let g = createGrpcLogClient(f.url);
    try {
      const runId = "s3-outage-1";
      await pushTask(g.client, runId, "build", 400, false);
      // The periodic flush uploads a segment while the store works.
      await waitFor("a segment of build", async () =>
        (await listKeys(PREFIX)).some((k) => k.includes(`${runId}.parts/build/`)) ? true : undefined,
      );

      proxy.failing = true;
      await g.client.push(
        messages({
          task: { runId, task: "build" },
          batch: batchOf(401, BASE_TS, testLines("late", 100)),
          complete: { result: Result.SUCCEEDED, exitCode: 0 },
        }),
      );
      await g.client.completeRun({ runId, result: Result.SUCCEEDED });
      await waitFor("the outage event", async () =>
        archiveEvents((await readAll(g.client, runId, "_server")).text).length > 0 ? true : undefined,
      );
      // Several more failed tries (periodic flushes) must not add events.
      proxy.reset();
      await waitFor("more failed tries", async () => (proxy.requests().length >= 6 ? true : undefined));
      const expected = {
        build: (await readAll(g.client, runId, "build")).text,
        _run: (await readAll(g.client, runId, "_run")).text,
        _server: (await readAll(g.client, runId, "_server")).text,
      };
      expect(archiveEvents(expected._server)).toHaveLength(1);
      expect(archiveEvents(expected._server)[0]?.line).toContain("retrying");
      expect(parseRecords(expected.build)).toHaveLength(500);

      // Nothing verified, nothing dropped — and what is pending survives a restart.
      g.close();
      await f.leader.stop();
      expect(await inspectStore(f.dataDir, runId, ["build", "_run", "_server"])).toEqual({
        build: { chunks: expect.any(Number), archived: false },
        _run: { chunks: expect.any(Number), archived: false },
        _server: { chunks: expect.any(Number), archived: false },
      });
      expect((await inspectStore(f.dataDir, runId, ["build"])).build?.chunks).toBeGreaterThan(0);
      await f.restart();
      g = createGrpcLogClient(f.url);
      proxy.reset();
      await waitFor("tries by the restarted leader", async () => (proxy.requests().length >= 2 ? true : undefined));

      proxy.failing = false;
      const run = (await g.client.getRun({ runId })).run;
      const startedAt = new Date(run?.startedAt ? timestampMs(run.startedAt) : 0);
      const object = await waitForRunObject(runKey(runId, startedAt));
      expect(gunzipSync(object).toString("utf8")).toBe(expected.build + expected._run + expected._server);

      g.close();
      await f.leader.stop();
      expect(await inspectStore(f.dataDir, runId, ["build", "_run", "_server"])).toEqual({
        build: { chunks: 0, archived: true },
        _run: { chunks: 0, archived: true },
        _server: { chunks: 0, archived: true },
      });
      await f.restart();
      g = createGrpcLogClient(f.url);
      expect((await readAll(g.client, runId, "build")).text).toBe(expected.build);
      expect(await tailToEnd(g.client.tail({ runId, task: "_server" }))).toBe(expected._server);
    } finally {
      proxy.failing = false;
      g.close();
      await f.dispose();
    }
  });
});

describe("ranged reads", () => {
  test("reading the last 64 KiB of a large archived log transfers a bounded number of bytes, with explicit ranges", async () => {
    const f = await startTestLeader(archiveConfig(60_000));
    const g = createGrpcLogClient(f.url);
    try {
      const runId = "s3-large-1";
      const lines = testLines("large", 2000);
      // 16 MiB of log in 80 batches; the archive flushes it at completion.
      for (let i = 0; i < 80; i++) {
        await g.client.push(
          messages({ task: { runId, task: "big", workspace: "acme", workflow: "deploy" }, batch: batchOf(1 + i * 2000, BASE_TS, lines) }),
        );
      }
      await g.client.push(messages({ task: { runId, task: "big" }, complete: { result: Result.SUCCEEDED, exitCode: 0 } }));
      const length = Number((await g.client.read({ runId, task: "big", offset: 0n, maxBytes: 1 })).length);
      const tailBefore = await g.client.read({ runId, task: "big", offset: BigInt(length - 65536), maxBytes: 65536 });
      await g.client.completeRun({ runId, result: Result.SUCCEEDED });
      const run = (await g.client.getRun({ runId })).run;
      const startedAt = new Date(run?.startedAt ? timestampMs(run.startedAt) : 0);
      const object = await waitForRunObject(runKey(runId, startedAt));
      expect(length).toBeGreaterThan(16 * 1024 * 1024);

      proxy.reset();
      const r = await g.client.read({ runId, task: "big", offset: BigInt(length - 65536), maxBytes: 65536 });
      expect(Buffer.from(r.data).equals(Buffer.from(tailBefore.data))).toBe(true);
      expect(Number(r.nextOffset)).toBe(length);
      const requests = proxy.requests();
      const transferred = proxy.bytesDown();
      expect(requests.filter((q) => q.startsWith("GET") && q.includes(".jsonl.gz")).every((q) => /bytes=\d+-\d+$/.test(q))).toBe(true);
      // The index and a member or two: a small fraction of the object.
      expect(transferred).toBeLessThan(object.length / 8);
      expect(transferred).toBeLessThan(512 * 1024);

      proxy.reset();
      await g.client.read({ runId, task: "big", offset: BigInt(length >> 1), maxBytes: 65536 });
      expect(proxy.bytesDown()).toBeLessThan(256 * 1024);
    } finally {
      g.close();
      await f.dispose();
    }
  });
});
