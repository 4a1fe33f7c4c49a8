import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { AdminService } from "../../gen/joblog/v1/admin_pb.js";
import { Result } from "../../gen/joblog/v1/log_pb.js";
import { KvStore } from "../../src/store/kv-store.js";
import { filesUnder } from "../helpers/files-under.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import {
  batchOf,
  createGrpcLogClient,
  expectConnectError,
  type GrpcLogClient,
  messages,
  readAll,
  testLines,
} from "../helpers/log-service-client.js";
import { startS3Proxy } from "../helpers/s3-proxy.js";
import { S3RVER_CREDENTIALS, type S3Server, startS3Server } from "../helpers/s3-server.js";
import { until } from "../helpers/task-logs.js";

/** DeleteRun and retention: afterwards nothing of a run is readable from the store, the archive or listings. */

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BASE_TS = Date.UTC(2025, 1, 12, 10, 56, 45, 123);

let dir: string;
let s3: S3Server;
let sdk: S3Client;
let f: LeaderFixture | undefined;
let g: GrpcLogClient | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-deletion-"));
  s3 = await startS3Server();
  sdk = new S3Client({
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: S3RVER_CREDENTIALS.access_key_id, secretAccessKey: S3RVER_CREDENTIALS.secret_access_key },
  });
});

afterEach(async () => {
  g?.close();
  g = undefined;
  await f?.dispose();
  f = undefined;
});

afterAll(async () => {
  sdk?.destroy();
  await s3?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function admin(url: string) {
  return createClient(AdminService, createGrpcTransport({ baseUrl: url }));
}

/** A completed run with one task of `lines` lines. */
async function completedRun(client: GrpcLogClient["client"], runId: string, lines = 300): Promise<void> {
  const task = { runId, task: "build", workspace: "team", workflow: "ci" };
  await client.push(
    messages({ task, batch: batchOf(1, BASE_TS, testLines(`${runId}-build`, lines)), complete: { result: Result.SUCCEEDED, exitCode: 0 } }),
  );
  await client.completeRun({ runId, result: Result.SUCCEEDED });
}

async function s3Keys(): Promise<string[]> {
  const res = await sdk.send(new ListObjectsV2Command({ Bucket: s3.bucket }));
  return (res.Contents ?? []).map((o) => o.Key ?? "");
}

/** Every key of both stores that holds `runId` (stopping the leader to open them), after the leader restarts. */
async function storeKeysOf(fixture: LeaderFixture, runId: string): Promise<string[]> {
  const found: string[] = [];
  await fixture.restart({
    between: async () => {
      for (const name of ["joblogs", "meta"]) {
        const kv = await KvStore.open(join(fixture.dataDir, name), { compression: false });
        try {
          for await (const [key] of kv.entries({}, 256)) if (key.includes(runId)) found.push(`${name}: ${key.toString("latin1")}`);
        } finally {
          await kv.close();
        }
      }
    },
  });
  return found;
}

async function expectGone(client: GrpcLogClient["client"], runId: string): Promise<void> {
  for (const task of ["build", "_run", "_server"]) await expectConnectError(client.read({ runId, task }), Code.NotFound, runId);
  await expectConnectError(client.tail({ runId, task: "build" })[Symbol.asyncIterator]().next(), Code.NotFound, runId);
  await expectConnectError(client.getRun({ runId }), Code.NotFound, runId);
  expect((await client.listRuns({ pageSize: 1000 })).runs.map((r) => r.runId)).not.toContain(runId);
}

describe("DeleteRun", () => {
  test("local archive: logs, states, data keys, archive objects and listings go; another run whose id extends it stays", async () => {
    const archiveDir = join(dir, "archive-local");
    f = await startTestLeader({ log_storage: { flush_interval_ms: 100, archive: { type: "local", path: archiveDir } } });
    g = createGrpcLogClient(f.url);
    await completedRun(g.client, "del-1");
    await completedRun(g.client, "del-10");
    const kept = (await readAll(g.client, "del-10", "build")).text;
    const objectsOf = async (runId: string) => (await filesUnder(archiveDir)).filter((p) => p.includes(`_${runId}.`));
    const archived = async (runId: string) => (await objectsOf(runId)).filter((p) => !p.includes(".parts/")).length === 2;
    await until(async () => (await objectsOf("del-1")).length === 2 && (await archived("del-1")) && (await archived("del-10")), 20_000);
    await until(async () => (await objectsOf("del-10")).length === 2, 20_000);

    const deleted = await admin(f.url).deleteRun({ runId: "del-1" });
    expect(deleted).toMatchObject({ tasks: 3, archiveObjects: 2 });
    await expectGone(g.client, "del-1");
    expect(await objectsOf("del-1")).toEqual([]);
    expect(await objectsOf("del-10")).toHaveLength(2);
    expect((await readAll(g.client, "del-10", "build")).text).toBe(kept);
    await expectConnectError(admin(f.url).deleteRun({ runId: "del-1" }), Code.NotFound, "del-1");

    g.close();
    // Nothing of the run left in either store: chunks, states, K/N keys, ledger, meta records and indexes.
    expect((await storeKeysOf(f, "del-1")).filter((k) => !k.includes("del-10"))).toEqual([]);
    g = createGrpcLogClient(f.url);
    await expectGone(g.client, "del-1");
    expect((await readAll(g.client, "del-10", "build")).text).toBe(kept);
  });

  test("s3 archive: a run deleted while its archive is still being written leaves no object behind", async () => {
    f = await startTestLeader({
      log_storage: {
        flush_interval_ms: 100,
        archive: { type: "s3", bucket: s3.bucket, prefix: "del/", endpoint: s3.endpoint, ...S3RVER_CREDENTIALS },
      },
    });
    g = createGrpcLogClient(f.url);
    await completedRun(g.client, "s3-del", 2000);
    const deleted = await admin(f.url).deleteRun({ runId: "s3-del" });
    expect(deleted.tasks).toBe(3);
    await expectGone(g.client, "s3-del");
    expect((await s3Keys()).filter((k) => k.includes("s3-del"))).toEqual([]);
    // Another run archived end to end: the flusher has passed since, and did not bring the deleted one back.
    await completedRun(g.client, "s3-other");
    await until(async () => (await s3Keys()).some((k) => k.endsWith("_s3-other.index.json")), 20_000);
    expect((await s3Keys()).filter((k) => k.includes("s3-del"))).toEqual([]);
  });

  test("s3 archive down: UNAVAILABLE and the run stays listed; deleting again once it is back finishes the job", async () => {
    const proxy = await startS3Proxy(s3.port);
    try {
      f = await startTestLeader({
        log_storage: {
          flush_interval_ms: 100,
          retry_attempts: 2,
          retry_initial_ms: 20,
          retry_max_ms: 50,
          archive: { type: "s3", bucket: s3.bucket, prefix: "outage/", endpoint: proxy.endpoint, ...S3RVER_CREDENTIALS },
        },
      });
      g = createGrpcLogClient(f.url);
      await completedRun(g.client, "s3-outage");
      // The run's archive is done: object and index written, segments cleaned up.
      await until(async () => {
        const keys = (await s3Keys()).filter((k) => k.includes("_s3-outage."));
        return keys.length === 2 && keys.some((k) => k.endsWith(".index.json"));
      }, 20_000);
      proxy.failing = true;
      await expectConnectError(admin(f.url).deleteRun({ runId: "s3-outage" }), Code.Unavailable, "s3-outage", "delete it again later");
      expect((await g.client.getRun({ runId: "s3-outage" })).run?.runId).toBe("s3-outage");
      proxy.failing = false;
      expect((await admin(f.url).deleteRun({ runId: "s3-outage" })).archiveObjects).toBe(2);
      await expectGone(g.client, "s3-outage");
      expect((await s3Keys()).filter((k) => k.includes("s3-outage"))).toEqual([]);
    } finally {
      g?.close();
      g = undefined;
      await f?.dispose();
      f = undefined;
      await proxy.close();
    }
  });

  test("a running run is refused and stays readable; unknown and malformed ids are named", async () => {
    f = await startTestLeader();
    g = createGrpcLogClient(f.url);
    await g.client.push(messages({ task: { runId: "live", task: "t" }, batch: batchOf(1, BASE_TS, testLines("t", 5)) }));
    await expectConnectError(
      admin(f.url).deleteRun({ runId: "live" }),
      Code.FailedPrecondition,
      "run live is still running",
      "complete it first",
    );
    expect((await readAll(g.client, "live", "t")).text).toContain("t line 5");
    await expectConnectError(admin(f.url).deleteRun({ runId: "nope" }), Code.NotFound, "run nope not found");
    await expectConnectError(admin(f.url).deleteRun({ runId: "../x" }), Code.InvalidArgument, "run_id");
  });

  test("joblog runs delete prints what it removed; the run is gone", async () => {
    f = await startTestLeader();
    g = createGrpcLogClient(f.url);
    await completedRun(g.client, "cli-del");
    await writeFile(join(dir, "empty.yaml"), "");
    const env = { PATH: process.env.PATH, HOME: dir, JOBLOG_LEADER: f.url, JOBLOG_CONFIG: join(dir, "empty.yaml") };
    const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(
        process.execPath,
        ["--import", "tsx", "src/cli/main.ts", "runs", "delete", "cli-del"],
        { cwd: ROOT, env, timeout: 20_000 },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      ),
    );
    expect(out).toEqual({ code: 0, stdout: "run cli-del deleted: 3 task logs, 0 archive objects\n", stderr: "" });
    await expectGone(g.client, "cli-del");
  });
});

describe("retention.days", () => {
  test("the sweep deletes completed runs that ended before the cutoff, with their archive objects; running ones stay", async () => {
    const archiveDir = join(dir, "archive-retention");
    // 0.00002 days is 1.7 s: the old run is past it soon after it ends, the sweep runs every second.
    f = await startTestLeader({
      retention: { days: 0.00002, sweep_interval_seconds: 1 },
      log_storage: { flush_interval_ms: 100, archive: { type: "local", path: archiveDir } },
    });
    g = createGrpcLogClient(f.url);
    await completedRun(g.client, "old-run");
    await g.client.push(messages({ task: { runId: "running-run", task: "t" }, batch: batchOf(1, BASE_TS, testLines("t", 5)) }));
    await until(async () => !(await g?.client.listRuns({}))?.runs.some((r) => r.runId === "old-run"), 20_000);
    await expectGone(g.client, "old-run");
    expect((await filesUnder(archiveDir)).filter((p) => p.includes("old-run"))).toEqual([]);
    expect((await g.client.getRun({ runId: "running-run" })).run?.runId).toBe("running-run");
    expect(f.logs.some((l) => l.startsWith("retention: deleted 1 runs"))).toBe(true);
  });
});
