import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { LogService, Result, RunState, TaskState } from "../../gen/joblog/v1/log_pb.js";
import { TaskLogWriter } from "../../src/worker/task-log-writer.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import {
  batchOf,
  canonicalRecord,
  expectedJsonl,
  messages,
  parseRecords,
  readAll,
  tailToEnd,
  testLines,
} from "../helpers/log-service-client.js";

/**
 * Every client a user can point at the one port — Connect over HTTP/1.1 and
 * HTTP/2, gRPC-Web, gRPC, and the worker's grpc-js writer — sees the same
 * canonical bytes.
 */

interface TransportCase {
  name: string;
  client: Client<typeof LogService>;
  /** Client streaming (Push) needs HTTP/2: Connect and gRPC-Web over HTTP/1.1 cannot send a request stream. */
  canPush: boolean;
}

const BASE_TS = Date.UTC(2025, 1, 12, 10, 56, 45, 123);

let f: LeaderFixture;
let cases: TransportCase[];
const sessions: Http2SessionManager[] = [];

beforeAll(async () => {
  f = await startTestLeader();
  const baseUrl = f.url;
  const h2 = (): Http2SessionManager => {
    const manager = new Http2SessionManager(baseUrl);
    sessions.push(manager);
    return manager;
  };
  const transports: Array<[string, Transport, boolean]> = [
    ["connect http/1.1", createConnectTransport({ baseUrl, httpVersion: "1.1" }), false],
    ["connect json http/1.1", createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }), false],
    ["connect http/2", createConnectTransport({ baseUrl, httpVersion: "2", sessionManager: h2() }), true],
    ["grpc-web http/1.1", createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }), false],
    ["grpc http/2", createGrpcTransport({ baseUrl, sessionManager: h2() }), true],
  ];
  cases = transports.map(([name, transport, canPush]) => ({ name, client: createClient(LogService, transport), canPush }));
});

afterAll(async () => {
  for (const s of sessions) s.abort();
  await f?.dispose();
});

const caseNames = ["connect http/1.1", "connect json http/1.1", "connect http/2", "grpc-web http/1.1", "grpc http/2"];

function caseNamed(name: string): TransportCase {
  const c = cases.find((x) => x.name === name);
  if (!c) throw new Error(`no transport ${name}`);
  return c;
}

/** A client that can push: the case's own when it streams requests, gRPC over HTTP/2 otherwise. */
function pusherFor(c: TransportCase): Client<typeof LogService> {
  return c.canPush ? c.client : caseNamed("grpc http/2").client;
}

function runIdFor(name: string, what: string): string {
  return `${what}-${name.replace(/[^A-Za-z0-9]+/g, "-")}`;
}

describe.each(caseNames)("over %s", (name) => {
  test("lines pushed through Push are read back as byte-identical canonical JSONL", async () => {
    const c = caseNamed(name);
    const runId = runIdFor(name, "push");
    const lines = testLines(name, 7);
    const response = await pusherFor(c).push(
      messages(
        { task: { runId, task: "build", workspace: "ws", workflow: "wf" }, batch: batchOf(1, BASE_TS, lines.slice(0, 4)) },
        { batch: batchOf(5, BASE_TS + 10, lines.slice(4)) },
        { complete: { result: Result.SUCCEEDED, exitCode: 0 } },
      ),
    );
    expect(response.durableSeq).toBe(7n);
    expect(response.completed).toBe(true);

    const expected = expectedJsonl("build", BASE_TS, lines.slice(0, 4)) + expectedJsonl("build", BASE_TS + 10, lines.slice(4));
    const read = await c.client.read({ runId, task: "build" });
    expect(Buffer.from(read.data).toString("utf8")).toBe(expected);
    expect(read.data.length).toBe(Buffer.byteLength(expected));
    expect(read.offset).toBe(0n);
    expect(read.nextOffset).toBe(BigInt(Buffer.byteLength(expected)));
    expect(read.length).toBe(BigInt(Buffer.byteLength(expected)));
    expect(read.complete).toBe(true);
    expect(response.length).toBe(read.length);
  });

  test("lines written by the grpc-js TaskLogWriter are read back byte-identical", async () => {
    const c = caseNamed(name);
    const runId = runIdFor(name, "writer");
    const writer = TaskLogWriter.open({ leader: f.url, runId, task: "test" });
    const expected: string[] = [];
    for (let i = 0; i < 5; i++) {
      const stream = i % 2 === 0 ? "stdout" : "stderr";
      const text = `writer line ${i} ü`;
      writer.write(stream, text, BASE_TS + i * 3);
      expected.push(canonicalRecord(BASE_TS + i * 3, stream, "test", text));
    }
    await writer.complete({ result: "failed", exitCode: 2 });

    const read = await c.client.read({ runId, task: "test" });
    expect(Buffer.from(read.data).toString("utf8")).toBe(expected.join(""));
    expect(read.complete).toBe(true);
  });

  test("Tail delivers stored and live records and ends with complete=true once the task completes", async () => {
    const c = caseNamed(name);
    const pusher = pusherFor(c);
    const runId = runIdFor(name, "tail");
    const ref = { runId, task: "deploy" };
    const first = testLines(`${name} first`, 3);
    const later = testLines(`${name} later`, 4);
    await pusher.push(messages({ task: ref, batch: batchOf(1, BASE_TS, first) }));

    const firstJsonl = expectedJsonl("deploy", BASE_TS, first);
    const laterJsonl = expectedJsonl("deploy", BASE_TS + 100, later);
    let pushedLater: Promise<unknown> | undefined;
    const received: Buffer[] = [];
    const tail = c.client.tail({ runId, task: "deploy" });
    // Push the rest once the stored part has arrived, so the tail must pick it up live.
    const observed = (async function* () {
      for await (const r of tail) {
        received.push(Buffer.from(r.data));
        if (!pushedLater && Buffer.concat(received).length >= Buffer.byteLength(firstJsonl)) {
          pushedLater = pusher.push(
            messages({ task: ref, batch: batchOf(4, BASE_TS + 100, later), complete: { result: Result.SUCCEEDED, exitCode: 0 } }),
          );
        }
        yield r;
      }
    })();
    const all = await tailToEnd(observed);
    expect(pushedLater, "the tail should deliver the stored records before the task completes").toBeDefined();
    await pushedLater;
    expect(all).toBe(firstJsonl + laterJsonl);
  });

  test("Tail from an offset in the middle of a completed log resumes there", async () => {
    const c = caseNamed(name);
    const runId = runIdFor(name, "resume");
    const lines = testLines(name, 6);
    await pusherFor(c).push(
      messages({ task: { runId, task: "t" }, batch: batchOf(1, BASE_TS, lines), complete: { result: Result.SUCCEEDED, exitCode: 0 } }),
    );
    const firstThree = Buffer.byteLength(expectedJsonl("t", BASE_TS, lines.slice(0, 3)));
    const rest = await tailToEnd(c.client.tail({ runId, task: "t", offset: BigInt(firstThree) }), BigInt(firstThree));
    expect(rest).toBe(expectedJsonl("t", BASE_TS, lines.slice(3)));
  });

  test("ListRuns and GetRun describe a pushed run", async () => {
    const c = caseNamed(name);
    const runId = runIdFor(name, "meta");
    const workspace = runIdFor(name, "ws");
    const lines = testLines(name, 2);
    await pusherFor(c).push(
      messages({
        task: { runId, task: "only", workspace, workflow: "nightly" },
        batch: batchOf(1, BASE_TS, lines),
        complete: { result: Result.FAILED, exitCode: 1 },
      }),
    );

    const listed = await c.client.listRuns({ workspace });
    expect(listed.runs.map((r) => r.runId)).toEqual([runId]);
    expect(listed.runs[0]).toMatchObject({ workspace, workflow: "nightly", state: RunState.RUNNING, taskCount: 1 });
    expect(listed.nextPageToken).toBe("");

    const got = await c.client.getRun({ runId });
    expect(got.run?.runId).toBe(runId);
    expect(got.tasks.map((t) => ({ name: t.name, state: t.state, result: t.result, exitCode: t.exitCode }))).toEqual([
      { name: "only", state: TaskState.COMPLETED, result: Result.FAILED, exitCode: 1 },
    ]);
    expect(got.tasks[0]?.recordCount).toBe(2n);
    expect(got.tasks[0]?.length).toBe(BigInt(Buffer.byteLength(expectedJsonl("only", BASE_TS, lines))));
    expect(got.runLog?.name).toBe("_run");
    expect(got.serverEvents?.name).toBe("_server");

    const runLog = parseRecords((await readAll(c.client, runId, "_run")).text);
    expect(runLog.map((r) => r.line)).toEqual([
      `run ${runId} started (workspace ${workspace}, workflow nightly)`,
      "task only started",
      expect.stringMatching(/^task only completed: failed, exit code 1, after \d+\.\d{3}s$/),
    ]);
  });
});
