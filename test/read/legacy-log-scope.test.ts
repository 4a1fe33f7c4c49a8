import { mkdir, mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import WebSocket from "ws";
import { Result } from "../../gen/joblog/v1/log_pb.js";
import { generateToken, hashToken } from "../../src/auth/bearer-token.js";
import type { TokenConfig } from "../../src/config/config-schema.js";
import { TaskLogRefusedError, TaskLogWriter } from "../../src/worker/task-log-writer.js";
import { expectedRecord } from "../helpers/expected-jsonl.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import {
  batchOf,
  createGrpcLogClient,
  expectConnectError,
  type GrpcLogClient,
  messages,
  readAll,
  tailToEnd,
  testLines,
} from "../helpers/log-service-client.js";

/**
 * A legacy plain-text log (`{local_dir}/{run_id}.log`) is the run log `_run` of a run id joblog
 * does not know, in no workspace: a worker cannot take its id over to make it readable in its
 * workspace, a reader limited to workspaces cannot read it (unless `log_storage.legacy_workspace`
 * maps legacy logs to one of them), and a run that had the id first shadows the file for good.
 */

const LEGACY_RUN = "old-run-7";
const LEGACY_LINES = ["other tenant's secret", "deployed to prod"];

const specs = {
  admin: { role: "admin" },
  worker: { role: "worker" },
  workerA: { role: "worker", workspaces: ["ws-a"] },
  reader: { role: "reader" },
  readerA: { role: "reader", workspaces: ["ws-a"] },
  readerOld: { role: "reader", workspaces: ["ws-old"] },
} as const;
type TokenName = keyof typeof specs;
const plain = Object.fromEntries(Object.keys(specs).map((name) => [name, generateToken()])) as Record<TokenName, string>;
const entries = Object.entries(specs).map(([name, spec]) => ({
  name,
  sha256: hashToken(plain[name as TokenName]),
  ...spec,
})) as TokenConfig[];

let dir: string;
let legacyDir: string;
let f: LeaderFixture;
const clients: GrpcLogClient[] = [];

function client(leader: LeaderFixture, token: TokenName): GrpcLogClient["client"] {
  const c = createGrpcLogClient(leader.url, plain[token]);
  clients.push(c);
  return c.client;
}

/** `GET /api/jobs/{run}/steps/{task}/logs` with `token`: the status and the body's text. */
async function stepLogs(leader: LeaderFixture, token: TokenName, run: string, task: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`${leader.url}/api/jobs/${run}/steps/${task}/logs`, { headers: { authorization: `Bearer ${plain[token]}` } });
  return { status: res.status, body: await res.text() };
}

/** The WebSocket log stream of a run with `token`: the refusal's status, or 101 and every message until the leader closes it. */
function logStream(leader: LeaderFixture, token: TokenName, run: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://${leader.leader.address}/api/jobs/${run}/logs/stream`, {
      headers: { authorization: `Bearer ${plain[token]}` },
    });
    let text = "";
    ws.on("error", () => undefined); // terminate() during the handshake reports itself as an error
    ws.on("unexpected-response", (_req, res) => {
      resolve({ status: res.statusCode ?? 0, text });
      ws.terminate();
    });
    ws.on("message", (data: Buffer) => {
      text += data.toString("utf8");
    });
    ws.on("close", () => resolve({ status: 101, text }));
  });
}

async function drain(responses: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of responses);
}

/** The attack of the report: a worker of ws-a opens a task under the legacy log's run id (refused now). */
async function tryTakeover(leader: LeaderFixture, run: string): Promise<void> {
  await client(leader, "workerA")
    .openTask({ task: { runId: run, task: "build", workspace: "ws-a" } })
    .catch(() => undefined);
}

const legacyJsonl = (mtime: Date) => LEGACY_LINES.map((line) => expectedRecord(mtime.getTime(), "stdout", "_run", line)).join("");

async function writeLegacy(run: string, lines: readonly string[]): Promise<Date> {
  const path = join(legacyDir, `${run}.log`);
  await writeFile(path, `${lines.join("\n")}\n`);
  const mtime = new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6));
  await utimes(path, mtime, mtime);
  return mtime;
}

let legacyMtime: Date;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-legacy-scope-"));
  legacyDir = join(dir, "legacy");
  await mkdir(legacyDir, { recursive: true });
  legacyMtime = await writeLegacy(LEGACY_RUN, LEGACY_LINES);
  f = await startTestLeader({ log_storage: { local_dir: legacyDir }, auth: { tokens: entries } } as Parameters<typeof startTestLeader>[0]);
});

afterAll(async () => {
  for (const c of clients) c.close();
  await f?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("a run id a legacy log has", () => {
  test("cannot be taken by a new run: OpenTask and Push are ALREADY_EXISTS, without the file's path, and nothing is created", async () => {
    for (const token of ["workerA", "worker"] as const) {
      const err = await expectConnectError(
        client(f, token).openTask({ task: { runId: LEGACY_RUN, task: "build", workspace: "ws-a" } }),
        Code.AlreadyExists,
        `run id ${LEGACY_RUN} is taken by a legacy log`,
        "log_storage.local_dir",
      );
      expect(err.rawMessage).not.toContain(legacyDir);
      await expectConnectError(
        client(f, token).push(
          messages({ task: { runId: LEGACY_RUN, task: "build", workspace: "ws-a" }, batch: batchOf(1, Date.now(), testLines("b", 3)) }),
        ),
        Code.AlreadyExists,
        LEGACY_RUN,
      );
    }
    await expectConnectError(client(f, "admin").getRun({ runId: LEGACY_RUN }), Code.NotFound, `run ${LEGACY_RUN} not found`);
    expect((await client(f, "admin").listRuns({ workspace: "ws-a" })).runs.map((r) => r.runId)).not.toContain(LEGACY_RUN);
  });

  test("a worker's writer fails at once on ALREADY_EXISTS instead of retrying", async () => {
    let retries = 0;
    const writer = TaskLogWriter.open({
      leader: f.url,
      connection: { token: plain.workerA },
      runId: LEGACY_RUN,
      task: "build",
      workspace: "ws-a",
      settings: { batchMaxIntervalMs: 5, backoffInitialMs: 5, backoffMaxMs: 10 },
      onRetry: () => retries++,
    });
    writer.write("stdout", "mine");
    const err = await writer.complete({ result: "succeeded", exitCode: 0 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TaskLogRefusedError);
    expect((err as TaskLogRefusedError).code).toBe(status.ALREADY_EXISTS);
    expect(retries).toBe(0);
  });

  test("is outside a workspace-scoped reader's scope under every task name, over gRPC, REST and the WebSocket", async () => {
    await tryTakeover(f, LEGACY_RUN);
    const reader = client(f, "readerA");
    for (const task of ["_run", "deploy", "build"]) {
      await expectConnectError(reader.read({ runId: LEGACY_RUN, task }), Code.PermissionDenied, "ws-a", LEGACY_RUN);
      await expectConnectError(drain(reader.tail({ runId: LEGACY_RUN, task })), Code.PermissionDenied, LEGACY_RUN);
      await expectConnectError(drain(reader.search({ runId: LEGACY_RUN, task, query: "secret" })), Code.PermissionDenied);
      await expectConnectError(reader.locateLine({ runId: LEGACY_RUN, task, lineNumber: 1n }), Code.PermissionDenied);
      const rest = await stepLogs(f, "readerA", LEGACY_RUN, task);
      expect(rest.status).toBe(403);
      expect(rest.body).not.toContain("secret");
    }
    expect((await logStream(f, "readerA", LEGACY_RUN)).status).toBe(403);
  });

  test("reads for an unscoped reader as the run log _run only: Read, Tail and REST; another task is NOT_FOUND / 404", async () => {
    await tryTakeover(f, LEGACY_RUN);
    const reader = client(f, "reader");
    const expected = legacyJsonl(legacyMtime);
    expect(await readAll(reader, LEGACY_RUN, "_run")).toEqual({ text: expected, length: Buffer.byteLength(expected), complete: true });
    expect(await tailToEnd(reader.tail({ runId: LEGACY_RUN, task: "_run" }))).toBe(expected);
    expect(await stepLogs(f, "reader", LEGACY_RUN, "_run")).toEqual({
      status: 200,
      body: JSON.stringify({ logs: LEGACY_LINES.map((l) => `${l}\n`).join("") }),
    });
    for (const task of ["deploy", "build"]) {
      await expectConnectError(
        reader.read({ runId: LEGACY_RUN, task }),
        Code.NotFound,
        `task ${task} not found in run ${LEGACY_RUN}`,
        "_run",
      );
      const rest = await stepLogs(f, "reader", LEGACY_RUN, task);
      expect(rest.status).toBe(404);
      expect(rest.body).not.toContain("secret");
    }
  });
});

describe("a run created before a legacy log of its id appeared", () => {
  test("shadows the legacy log for good: its own _run, its own tasks, NOT_FOUND for others, never the file's bytes", async () => {
    const run = "shared-9";
    const worker = client(f, "workerA");
    const task = { runId: run, task: "build", workspace: "ws-a" };
    await worker.push(messages({ task, batch: batchOf(1, Date.now(), [{ text: "own build line", stream: "stdout", tsOffsetMs: 0 }]) }));
    await worker.push(messages({ task, complete: { result: Result.SUCCEEDED, exitCode: 0 } }));
    await writeLegacy(run, LEGACY_LINES);

    const expectShadowed = async () => {
      for (const token of ["readerA", "reader"] as const) {
        const reader = client(f, token);
        const runLog = await readAll(reader, run, "_run");
        expect(runLog.text).toContain(`run ${run} started`);
        expect(runLog.text).not.toContain("secret");
        expect((await readAll(reader, run, "build")).text).toContain("own build line");
        await expectConnectError(reader.read({ runId: run, task: "deploy" }), Code.NotFound, `task deploy not found in run ${run}`);
        const restRunLog = await stepLogs(f, token, run, "_run");
        expect(restRunLog.status).toBe(200);
        expect(restRunLog.body).toContain(`run ${run} started`);
        expect(restRunLog.body).not.toContain("secret");
        const restOther = await stepLogs(f, token, run, "deploy");
        expect(restOther.status).toBe(404);
        expect(restOther.body).not.toContain("secret");
      }
    };
    await expectShadowed();
    await worker.completeRun({ runId: run, result: Result.SUCCEEDED });
    await expectShadowed();
    const stream = await logStream(f, "readerA", run);
    expect(stream.status).toBe(101);
    expect(stream.text).toContain("own build line");
    expect(stream.text).not.toContain("secret");
  });
});

describe("log_storage.legacy_workspace", () => {
  let mapped: LeaderFixture;

  beforeAll(async () => {
    mapped = await startTestLeader({
      log_storage: { local_dir: legacyDir, legacy_workspace: "ws-old" },
      auth: { tokens: entries },
    } as Parameters<typeof startTestLeader>[0]);
  });

  afterAll(async () => {
    await mapped?.dispose();
  });

  test("puts legacy logs in that workspace's scope: a ws-old reader reads them, a ws-a reader still cannot", async () => {
    await tryTakeover(mapped, LEGACY_RUN);
    const expected = legacyJsonl(legacyMtime);
    const old = client(mapped, "readerOld");
    expect((await readAll(old, LEGACY_RUN, "_run")).text).toBe(expected);
    expect(await tailToEnd(old.tail({ runId: LEGACY_RUN, task: "_run" }))).toBe(expected);
    expect((await stepLogs(mapped, "readerOld", LEGACY_RUN, "_run")).status).toBe(200);
    await expectConnectError(old.read({ runId: LEGACY_RUN, task: "deploy" }), Code.NotFound, "task deploy");
    expect((await stepLogs(mapped, "readerOld", LEGACY_RUN, "deploy")).status).toBe(404);

    await expectConnectError(client(mapped, "readerA").read({ runId: LEGACY_RUN, task: "_run" }), Code.PermissionDenied, "ws-a");
    expect((await stepLogs(mapped, "readerA", LEGACY_RUN, "_run")).status).toBe(403);
    await expectConnectError(
      client(mapped, "workerA").openTask({ task: { runId: LEGACY_RUN, task: "build", workspace: "ws-a" } }),
      Code.PermissionDenied,
      "ws-old",
    );
  });
});
