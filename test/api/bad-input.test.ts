import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Result } from "../../gen/joblog/v1/log_pb.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import {
  batchOf,
  canonicalRecord,
  createGrpcLogClient,
  expectConnectError,
  expectedJsonl,
  type GrpcLogClient,
  type LogClient,
  messages,
  parseRecords,
  readAll,
  testLines,
} from "../helpers/log-service-client.js";

/**
 * Each bad input gets its own gRPC code and a message naming the field or the
 * limit, and leaves the stored logs exactly as they were.
 */

const MAX_LINES = 10;
const MAX_MESSAGE_BYTES = 64 * 1024;
const MAX_LINE_BYTES = 1024;
const BASE_TS = Date.UTC(2025, 1, 12, 10, 56, 45, 123);

let f: LeaderFixture;
let g: GrpcLogClient;
let client: LogClient;

beforeAll(async () => {
  f = await startTestLeader({
    limits: { max_lines_per_batch: MAX_LINES, max_message_bytes: MAX_MESSAGE_BYTES, max_line_bytes: MAX_LINE_BYTES },
  });
  g = createGrpcLogClient(f.url);
  client = g.client;
});

afterAll(async () => {
  g?.close();
  await f?.dispose();
});

/** A task with three stored lines (seq 1..3), still running. */
async function seededTask(runId: string, task = "build"): Promise<{ ref: { runId: string; task: string }; jsonl: string }> {
  const lines = testLines(runId, 3);
  const ref = { runId, task };
  const response = await client.push(messages({ task: ref, batch: batchOf(1, BASE_TS, lines) }));
  expect(response.durableSeq).toBe(3n);
  return { ref, jsonl: expectedJsonl(task, BASE_TS, lines) };
}

/** Runs `call` and checks that the task's stored bytes and length are the same after as before. */
async function expectUnchanged<T>(ref: { runId: string; task: string }, call: () => Promise<T>): Promise<T> {
  const before = await readAll(client, ref.runId, ref.task);
  const result = await call();
  const after = await readAll(client, ref.runId, ref.task);
  expect(after).toEqual(before);
  return result;
}

async function runIds(): Promise<string[]> {
  const page = await client.listRuns({ pageSize: 500 });
  return page.runs.map((r) => r.runId).sort();
}

describe("identifiers", () => {
  const badValues: Array<[string, string, string]> = [
    ["dot-dot", "a..b", '".."'],
    ["slash", "a/b", "may only contain"],
    ["backslash", "a\\b", "may only contain"],
    ["newline", "a\nb", "may only contain"],
    ["NUL", "a\u0000b", "may only contain"],
    ["escape", "a\u001bb", "may only contain"],
    ["leading dot", ".hidden", "must start with a letter or digit"],
    ["space", "a b", "may only contain"],
    ["empty", "", "is empty"],
    ["too long", "x".repeat(129), "129 characters long; the limit is 128"],
  ];
  const fields = ["run_id", "task", "workspace", "workflow"] as const;
  type Field = (typeof fields)[number];

  function refWith(field: Field, value: string, base: { runId: string; task: string }) {
    const ref = { runId: base.runId, task: base.task, workspace: "", workflow: "" };
    if (field === "run_id") ref.runId = value;
    if (field === "task") ref.task = value;
    if (field === "workspace") ref.workspace = value;
    if (field === "workflow") ref.workflow = value;
    return ref;
  }

  let seeded: { ref: { runId: string; task: string }; jsonl: string };
  beforeAll(async () => {
    seeded = await seededTask("ids-run");
  });

  for (const field of fields) {
    // Empty workspace/workflow means "default or the run's own", so it is not an error there.
    const cases = badValues.filter(([label]) => label !== "empty" || field === "run_id" || field === "task");
    test.each(cases)(`OpenTask and Push refuse a ${field} with %s as INVALID_ARGUMENT naming task.${field}`, async (_label, value, why) => {
      const runsBefore = await runIds();
      await expectUnchanged(seeded.ref, async () => {
        const ref = refWith(field, value, seeded.ref);
        await expectConnectError(client.openTask({ task: ref }), Code.InvalidArgument, `task.${field}`, why);
        await expectConnectError(
          client.push(messages({ task: ref, batch: batchOf(4, BASE_TS, testLines("bad", 1)) })),
          Code.InvalidArgument,
          `task.${field}`,
          why,
        );
      });
      expect(await runIds()).toEqual(runsBefore);
    });
  }

  for (const field of ["run_id", "task"] as const) {
    test.each(badValues)(`Read and Tail refuse a ${field} with %s as INVALID_ARGUMENT naming ${field}`, async (_label, value, why) => {
      const req = field === "run_id" ? { runId: value, task: "build" } : { runId: seeded.ref.runId, task: value };
      await expectConnectError(client.read(req), Code.InvalidArgument, field, why);
      await expectConnectError(
        (async () => {
          for await (const _ of client.tail(req)) throw new Error("tail should not send anything");
        })(),
        Code.InvalidArgument,
        field,
        why,
      );
    });
  }

  test.each(badValues.filter(([label]) => label !== "empty"))(
    "ListRuns refuses a workspace or workflow filter with %s as INVALID_ARGUMENT naming it",
    async (_label, value, why) => {
      await expectConnectError(client.listRuns({ workspace: value }), Code.InvalidArgument, "workspace", why);
      await expectConnectError(client.listRuns({ workflow: value }), Code.InvalidArgument, "workflow", why);
    },
  );

  test.each(badValues)("GetRun and CompleteRun refuse a run_id with %s as INVALID_ARGUMENT naming run_id", async (_label, value, why) => {
    await expectConnectError(client.getRun({ runId: value }), Code.InvalidArgument, "run_id", why);
    await expectConnectError(client.completeRun({ runId: value, result: Result.SUCCEEDED }), Code.InvalidArgument, "run_id", why);
  });
});

describe("Push", () => {
  test("to _server is PERMISSION_DENIED and stores nothing", async () => {
    const { ref } = await seededTask("server-run");
    const server = { runId: ref.runId, task: "_server" };
    await expectUnchanged(server, async () => {
      await expectConnectError(
        client.push(messages({ task: server, batch: batchOf(1, BASE_TS, testLines("forged", 1)) })),
        Code.PermissionDenied,
        "_server",
      );
      await expectConnectError(client.openTask({ task: server }), Code.PermissionDenied, "_server");
    });
  });

  test("to a completed task is FAILED_PRECONDITION and stores nothing", async () => {
    const { ref } = await seededTask("completed-task-run");
    await client.push(messages({ task: ref, complete: { result: Result.SUCCEEDED, exitCode: 0 } }));
    await expectUnchanged(ref, () =>
      expectConnectError(
        client.push(messages({ task: ref, batch: batchOf(4, BASE_TS, testLines("late", 2)) })),
        Code.FailedPrecondition,
        "already completed",
        "build",
      ),
    );
  });

  test("completing a completed task again with another result is FAILED_PRECONDITION", async () => {
    const { ref } = await seededTask("recomplete-run");
    await client.push(messages({ task: ref, complete: { result: Result.SUCCEEDED, exitCode: 0 } }));
    const again = await client.push(messages({ task: ref, complete: { result: Result.SUCCEEDED, exitCode: 0 } }));
    expect(again.completed).toBe(true);
    await expectUnchanged(ref, () =>
      expectConnectError(
        client.push(messages({ task: ref, complete: { result: Result.FAILED, exitCode: 1 } })),
        Code.FailedPrecondition,
        "already completed as succeeded",
      ),
    );
  });

  test("a completion without a result is INVALID_ARGUMENT naming complete.result", async () => {
    const { ref } = await seededTask("no-result-run");
    await expectUnchanged(ref, () =>
      expectConnectError(client.push(messages({ task: ref, complete: { exitCode: 0 } })), Code.InvalidArgument, "complete.result"),
    );
    expect((await client.openTask({ task: ref })).durableSeq).toBe(3n);
  });

  test("without a task in the first message is INVALID_ARGUMENT naming task", async () => {
    const runsBefore = await runIds();
    await expectConnectError(
      client.push(messages({ batch: batchOf(1, BASE_TS, testLines("orphan", 1)) })),
      Code.InvalidArgument,
      "task is required",
    );
    expect(await runIds()).toEqual(runsBefore);
  });

  test("naming another task in a later message is INVALID_ARGUMENT", async () => {
    const { ref } = await seededTask("switch-run");
    await expectUnchanged(ref, () =>
      expectConnectError(
        client.push(messages({ task: ref }, { task: { ...ref, task: "other" }, batch: batchOf(4, BASE_TS, testLines("x", 1)) })),
        Code.InvalidArgument,
        "same task",
      ),
    );
  });

  test("a batch that skips sequence numbers is FAILED_PRECONDITION naming the expected number, stores nothing, and is a server event", async () => {
    const { ref } = await seededTask("gap-run");
    const err = await expectUnchanged(ref, () =>
      expectConnectError(
        client.push(messages({ task: ref, batch: batchOf(6, BASE_TS, testLines("gap", 2)) })),
        Code.FailedPrecondition,
        "expects 4",
        "first_seq is 6",
      ),
    );
    expect((await client.openTask({ task: ref })).durableSeq).toBe(3n);

    const events = parseRecords((await readAll(client, ref.runId, "_server")).text);
    expect(events).toContainEqual({
      ts: expect.any(String),
      stream: "stderr",
      step: "_server",
      line: `rejected a Push batch for task build: ${err.rawMessage}`,
    });
  });

  test("a refused batch after good ones keeps the good ones and refuses only itself", async () => {
    const { ref, jsonl } = await seededTask("partial-run");
    const good = testLines("good", 2);
    await expectConnectError(
      client.push(messages({ task: ref, batch: batchOf(4, BASE_TS, good) }, { batch: batchOf(9, BASE_TS, testLines("gap", 1)) })),
      Code.FailedPrecondition,
      "expects 6",
    );
    const after = await readAll(client, ref.runId, ref.task);
    expect(after.text).toBe(jsonl + expectedJsonl("build", BASE_TS, good));
  });

  test("a batch with first_seq 0 is INVALID_ARGUMENT naming batch.first_seq", async () => {
    const { ref } = await seededTask("seq-zero-run");
    await expectUnchanged(ref, () =>
      expectConnectError(
        client.push(messages({ task: ref, batch: batchOf(0, BASE_TS, testLines("zero", 1)) })),
        Code.InvalidArgument,
        "batch.first_seq",
      ),
    );
  });

  test("more lines than limits.max_lines_per_batch is RESOURCE_EXHAUSTED naming the limit", async () => {
    const { ref } = await seededTask("many-lines-run");
    await expectUnchanged(ref, () =>
      expectConnectError(
        client.push(messages({ task: ref, batch: batchOf(4, BASE_TS, testLines("many", MAX_LINES + 1)) })),
        Code.ResourceExhausted,
        "max_lines_per_batch",
        `${MAX_LINES + 1} lines`,
      ),
    );
    // Exactly at the limit is fine.
    const ok = await client.push(messages({ task: ref, batch: batchOf(4, BASE_TS, testLines("many", MAX_LINES)) }));
    expect(ok.durableSeq).toBe(BigInt(3 + MAX_LINES));
  });

  test("a message over limits.max_message_bytes is RESOURCE_EXHAUSTED naming the limit", async () => {
    const { ref } = await seededTask("big-message-run");
    const big = Array.from({ length: MAX_LINES }, (_, i) => ({ text: `${i}`.padEnd(8000, "x"), stream: "stdout" as const, tsOffsetMs: 0 }));
    // Its own connection: the leader stops reading the oversized message, so the client is left mid-send
    // and its stream stays open until the connection goes.
    const sender = createGrpcLogClient(f.url);
    try {
      await expectUnchanged(ref, () =>
        expectConnectError(
          sender.client.push(messages({ task: ref, batch: batchOf(4, BASE_TS, big) })),
          Code.ResourceExhausted,
          "max_message_bytes",
          `${MAX_MESSAGE_BYTES}`,
        ),
      );
    } finally {
      sender.close();
    }
    expect((await client.openTask({ task: ref })).durableSeq).toBe(3n);
  });

  test("a message that is not a PushRequest is INVALID_ARGUMENT naming it, and stores nothing", async () => {
    const { ref } = await seededTask("garbled-run");
    const raw = new grpc.Client(new URL(f.url).host, grpc.credentials.createInsecure());
    try {
      const status = await expectUnchanged(
        ref,
        () =>
          new Promise<grpc.ServiceError | null>((resolve) => {
            const call = raw.makeClientStreamRequest(
              "/joblog.v1.LogService/Push",
              (b: Buffer) => b,
              (b: Buffer) => b,
              new grpc.Metadata(),
              {},
              resolve,
            );
            // Field 2 (batch) announced as 100 bytes long, with 3 there.
            call.write(Buffer.from([0x12, 100, 1, 2, 3]));
            call.end();
          }),
      );
      expect(status?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(status?.details).toMatch(/PushRequest/);
    } finally {
      raw.close();
    }
  });

  /**
   * Checks a stored over-long line: a prefix of the original cut at a character
   * boundary within the limit, then the marker with the true number of bytes cut.
   */
  function expectTruncated(stored: string, original: string): void {
    const match = /^(.*) \[joblog: line truncated, (\d+) bytes cut\]$/su.exec(stored);
    expect(match, "the stored line should end with the truncation marker").not.toBeNull();
    const kept = match?.[1] ?? "";
    const keptBytes = Buffer.byteLength(kept);
    expect(original.startsWith(kept)).toBe(true);
    expect(kept).not.toContain("\uFFFD");
    expect(keptBytes + Number(match?.[2])).toBe(Buffer.byteLength(original));
    expect(keptBytes).toBeLessThanOrEqual(MAX_LINE_BYTES);
    // Cut at the limit, less at most the marker and one partial character.
    expect(keptBytes).toBeGreaterThan(MAX_LINE_BYTES - 64);
  }

  test.each([
    ["two-byte characters", "é".repeat(1500)],
    ["a cut inside a three-byte character", `a${"€".repeat(700)}`],
    ["ASCII", "x".repeat(5000)],
  ])("an over-long line (%s) is stored truncated with a marker naming the bytes cut, not rejected", async (label, long) => {
    const { ref, jsonl } = await seededTask(`long-line-${label.replace(/[^a-z]+/g, "-")}`);
    const response = await client.push(
      messages({ task: ref, batch: batchOf(4, BASE_TS, [{ text: long, stream: "stderr", tsOffsetMs: 0 }, ...testLines("after", 1)]) }),
    );
    expect(response.durableSeq).toBe(5n);
    const stored = (await readAll(client, ref.runId, ref.task)).text;
    expect(stored.startsWith(jsonl)).toBe(true);
    const records = parseRecords(stored.slice(jsonl.length));
    expect(records.map((r) => r.stream)).toEqual(["stderr", "stdout"]);
    expectTruncated(records[0]?.line ?? "", long);
    expect(records[1]?.line).toBe(testLines("after", 1)[0]?.text);
  });

  test("invalid UTF-8 is stored with U+FFFD, not rejected", async () => {
    const { ref, jsonl } = await seededTask("utf8-run");
    const batch = batchOf(4, BASE_TS, [{ text: "", stream: "stdout", tsOffsetMs: 5 }]);
    const only = batch.lines?.[0];
    if (!only) throw new Error("batch without a line");
    only.text = new Uint8Array([0x61, 0xff, 0xfe, 0x62, 0xc3]);
    const response = await client.push(messages({ task: ref, batch }));
    expect(response.durableSeq).toBe(4n);
    const stored = (await readAll(client, ref.runId, ref.task)).text;
    expect(stored).toBe(jsonl + canonicalRecord(BASE_TS + 5, "stdout", "build", "a\uFFFD\uFFFDb\uFFFD"));
  });

  test("a resend of a stored batch is acknowledged and not stored twice; an overlapping one stores only its new lines", async () => {
    const { ref, jsonl } = await seededTask("resend-run");
    const lines = testLines("resend-run", 3);
    const resent = await expectUnchanged(ref, () => client.push(messages({ task: ref, batch: batchOf(1, BASE_TS, lines) })));
    expect(resent.durableSeq).toBe(3n);
    expect(resent.length).toBe(BigInt(Buffer.byteLength(jsonl)));

    const overlap = testLines("overlap", 3); // seq 2, 3, 4: only 4 is new
    const response = await client.push(messages({ task: ref, batch: batchOf(2, BASE_TS, overlap) }));
    expect(response.durableSeq).toBe(4n);
    const extra = overlap.slice(2);
    expect((await readAll(client, ref.runId, ref.task)).text).toBe(jsonl + expectedJsonl("build", BASE_TS, extra));
    expect((await client.getRun({ runId: ref.runId })).tasks[0]?.recordCount).toBe(4n);
  });
});

describe("Read and Tail", () => {
  async function tailError(req: { runId: string; task: string; offset?: bigint }): Promise<void> {
    for await (const _ of client.tail(req)) throw new Error("tail should not send anything");
  }

  test("of an unknown run or task is NOT_FOUND naming it", async () => {
    const { ref } = await seededTask("known-run");
    await expectConnectError(client.read({ runId: "no-such-run", task: "build" }), Code.NotFound, "run no-such-run");
    await expectConnectError(tailError({ runId: "no-such-run", task: "build" }), Code.NotFound, "run no-such-run");
    await expectConnectError(client.read({ runId: ref.runId, task: "no-such-task" }), Code.NotFound, "task no-such-task", ref.runId);
    await expectConnectError(tailError({ runId: ref.runId, task: "no-such-task" }), Code.NotFound, "task no-such-task", ref.runId);
    await expectConnectError(client.getRun({ runId: "no-such-run" }), Code.NotFound, "run no-such-run");
    await expectConnectError(client.completeRun({ runId: "no-such-run", result: Result.FAILED }), Code.NotFound, "run no-such-run");
  });

  test("from an offset past the end is INVALID_ARGUMENT naming the offset and the length", async () => {
    const { ref, jsonl } = await seededTask("offset-run");
    const length = Buffer.byteLength(jsonl);
    const past = BigInt(length + 1);
    await expectConnectError(client.read({ ...ref, offset: past }), Code.InvalidArgument, `offset ${length + 1}`, `length ${length}`);
    await expectConnectError(tailError({ ...ref, offset: past }), Code.InvalidArgument, `offset ${length + 1}`, `length ${length}`);
    // At the end exactly is fine: nothing to return yet.
    const atEnd = await client.read({ ...ref, offset: BigInt(length) });
    expect(atEnd.data.length).toBe(0);
    expect(atEnd.nextOffset).toBe(BigInt(length));
  });

  test("from an offset inside a record starts at the next record", async () => {
    const { ref, jsonl } = await seededTask("mid-record-run");
    const firstEnd = jsonl.indexOf("\n") + 1;
    const r = await client.read({ ...ref, offset: 5n });
    expect(r.offset).toBe(BigInt(Buffer.byteLength(jsonl.slice(0, firstEnd))));
    expect(Buffer.from(r.data).toString("utf8")).toBe(jsonl.slice(firstEnd));
  });
});

describe("ListRuns and CompleteRun", () => {
  test.each(["!!!not-a-token", "eHl6", "%%%", " "])(
    "ListRuns with the garbage page_token %j is INVALID_ARGUMENT naming page_token",
    async (token) => {
      await expectConnectError(client.listRuns({ pageToken: token }), Code.InvalidArgument, "page_token");
    },
  );

  test("a page_token from a listing with other filters is INVALID_ARGUMENT naming page_token", async () => {
    await seededTask("token-a");
    await seededTask("token-b");
    const first = await client.listRuns({ pageSize: 1 });
    expect(first.nextPageToken).not.toBe("");
    await expectConnectError(
      client.listRuns({ pageSize: 1, pageToken: first.nextPageToken, workspace: "default" }),
      Code.InvalidArgument,
      "page_token",
    );
  });

  test("CompleteRun with RESULT_UNSPECIFIED is INVALID_ARGUMENT naming result and leaves the run running", async () => {
    const { ref } = await seededTask("unspecified-run");
    const runLog = { runId: ref.runId, task: "_run" };
    await expectUnchanged(runLog, () =>
      expectConnectError(client.completeRun({ runId: ref.runId, result: Result.UNSPECIFIED }), Code.InvalidArgument, "result"),
    );
    const run = await client.getRun({ runId: ref.runId });
    expect(run.run?.result).toBe(Result.UNSPECIFIED);
    expect(run.run?.endedAt).toBeUndefined();
  });
});
