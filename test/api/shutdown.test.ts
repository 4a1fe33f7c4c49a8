import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { status } from "@grpc/grpc-js";
import { expect, test } from "vitest";
import { LogService, Result, TaskState } from "../../gen/joblog/v1/log_pb.js";
import { grpcCode, LeaderClient } from "../../src/client/leader-client.js";
import { TaskLogWriter } from "../../src/worker/task-log-writer.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import {
  batchOf,
  canonicalRecord,
  createGrpcLogClient,
  createPushStream,
  expectConnectError,
  expectedJsonl,
  type GrpcLogClient,
  type LogClient,
  messages,
  readAll,
  tailToEnd,
  testLines,
} from "../helpers/log-service-client.js";

/**
 * A graceful stop ends every stream with UNAVAILABLE and a way to resume, and
 * loses nothing that was acknowledged: a restarted leader serves it all.
 */

const BASE_TS = Date.UTC(2025, 1, 12, 10, 56, 45, 123);

/** Each test stops its own leader; this runs the test and always cleans up. */
async function withLeader(fn: (f: LeaderFixture, clients: () => LogClient) => Promise<void>): Promise<void> {
  const f = await startTestLeader();
  const opened: GrpcLogClient[] = [];
  // A client per phase: one that lived through a stop holds a closed connection.
  const clients = () => {
    const g = createGrpcLogClient(f.url);
    opened.push(g);
    return g.client;
  };
  try {
    await fn(f, clients);
  } finally {
    for (const g of opened) g.close();
    await f.dispose();
  }
}

/** Iterates `stream` until at least `bytes` of data have arrived; returns what arrived. */
async function receive(
  stream: AsyncIterator<{ data: Uint8Array; nextOffset: bigint }>,
  bytes: number,
): Promise<{ text: string; next: bigint }> {
  const parts: Buffer[] = [];
  let total = 0;
  let next = 0n;
  for (let i = 0; i < 1000 && total < bytes; i++) {
    const r = await stream.next();
    if (r.done) throw new Error(`stream ended after ${total} of ${bytes} bytes`);
    parts.push(Buffer.from(r.value.data));
    total += r.value.data.length;
    next = r.value.nextOffset;
  }
  expect(total).toBeGreaterThanOrEqual(bytes);
  return { text: Buffer.concat(parts).toString("utf8"), next };
}

test.each(["grpc", "connect http/1.1"])(
  "stop() ends a Tail (%s) following a running task with UNAVAILABLE naming the offset to resume from",
  async (transport) => {
    await withLeader(async (f, clients) => {
      const client = clients();
      const tailer =
        transport === "grpc" ? client : createClient(LogService, createConnectTransport({ baseUrl: f.url, httpVersion: "1.1" }));
      const ref = { runId: "stop-tail", task: "build" };
      const lines = testLines("stop-tail", 5);
      await client.push(messages({ task: ref, batch: batchOf(1, BASE_TS, lines) }));
      const jsonl = expectedJsonl("build", BASE_TS, lines);
      const length = Buffer.byteLength(jsonl);

      const tail = tailer.tail(ref)[Symbol.asyncIterator]();
      const seen = await receive(tail, length);
      expect(seen.text).toBe(jsonl);

      const stopped = f.leader.stop();
      const err = await expectConnectError(tail.next(), Code.Unavailable, "shutting down", `resume the tail from offset ${length}`);
      expect(err.rawMessage).toContain(String(seen.next));
      await stopped;

      // Resuming from that offset on the restarted leader picks up where the tail stopped.
      await f.restart();
      const after = clients();
      const more = testLines("after restart", 2);
      await after.push(messages({ task: ref, batch: batchOf(6, BASE_TS + 50, more), complete: { result: Result.SUCCEEDED, exitCode: 0 } }));
      const rest = await tailToEnd(after.tail({ ...ref, offset: seen.next }), seen.next);
      expect(rest).toBe(expectedJsonl("build", BASE_TS + 50, more));
    });
  },
);

test("stop() commits the batches a worker's Push stream has in flight, ends it with UNAVAILABLE, and restart() serves what was acknowledged", async () => {
  await withLeader(async (f, clients) => {
    const client = clients();
    // The worker's own grpc-js client: it stops its side of the stream as soon as the status arrives.
    const worker = new LeaderClient(f.url);
    try {
      const ref = { runId: "stop-push", task: "build" };
      const batchLines = 5;
      const all = testLines("stop-push", 40 * batchLines);
      await client.openTask({ task: ref });
      const call = worker.push();
      // Everything goes out at once, so batches are still arriving and committing when the stop begins.
      for (let start = 0; start < all.length; start += batchLines) {
        call.write({ ...(start === 0 ? { task: ref } : {}), batch: batchOf(start + 1, BASE_TS, all.slice(start, start + batchLines)) });
      }
      const tail = client.tail(ref)[Symbol.asyncIterator]();
      await receive(tail, Buffer.byteLength(expectedJsonl("build", BASE_TS, all.slice(0, batchLines))));
      void tail.return?.();

      const stopped = f.leader.stop();
      const outcome = await call.end().then(
        (response) => ({ response, err: undefined }),
        (err: unknown) => ({ response: undefined, err }),
      );
      expect(outcome.response, "the stream should fail, not succeed").toBeUndefined();
      expect(grpcCode(outcome.err)).toBe(status.UNAVAILABLE);
      const details = outcome.err instanceof Error && "details" in outcome.err ? String(outcome.err.details) : "";
      expect(details).toContain("shutting down");
      const acknowledged = Number(/lines up to seq (\d+) are stored/.exec(details)?.[1]);
      expect(acknowledged).toBeGreaterThanOrEqual(batchLines);
      expect(acknowledged).toBeLessThanOrEqual(all.length);
      expect(acknowledged % batchLines).toBe(0);
      await stopped;

      await f.restart();
      const after = clients();
      const stored = await readAll(after, ref.runId, ref.task);
      expect(stored.text).toBe(expectedJsonl("build", BASE_TS, all.slice(0, acknowledged)));
      expect((await after.openTask({ task: ref })).durableSeq).toBe(BigInt(acknowledged));
    } finally {
      worker.close();
    }
  });
});

test("stop() ends a Push stream that is waiting for its next message with UNAVAILABLE, keeping what it committed", async () => {
  await withLeader(async (f, clients) => {
    const client = clients();
    const ref = { runId: "stop-idle-push", task: "build" };
    const lines = testLines("stop-idle-push", 4);

    await client.openTask({ task: ref });
    const stream = createPushStream();
    const pushed = client.push(stream);
    pushed.catch(() => undefined); // asserted below; keeps an early failure from surfacing as unhandled
    stream.send({ task: ref, batch: batchOf(1, BASE_TS, lines) });
    const tail = client.tail(ref)[Symbol.asyncIterator]();
    await receive(tail, Buffer.byteLength(expectedJsonl("build", BASE_TS, lines)));
    void tail.return?.();

    const stopped = f.leader.stop();
    // Should the answer never come, ending the request stream once stop() resolves keeps the client from hanging.
    void stopped.finally(() => stream.end());
    await expectConnectError(pushed, Code.Unavailable, "shutting down", "lines up to seq 4 are stored").finally(() => stream.end());
    await stopped;

    await f.restart();
    const after = clients();
    expect((await readAll(after, ref.runId, ref.task)).text).toBe(expectedJsonl("build", BASE_TS, lines));
    expect((await after.openTask({ task: ref })).durableSeq).toBe(4n);
  });
});

test("a TaskLogWriter carries on across stop() and restart(): every line stored exactly once, in order", async () => {
  await withLeader(async (f, clients) => {
    const runId = "stop-writer";
    const retries: unknown[] = [];
    const writer = TaskLogWriter.open({
      leader: f.url,
      runId,
      task: "build",
      settings: { batchMaxLines: 3, backoffInitialMs: 10, backoffMaxMs: 200 },
      onRetry: (err) => retries.push(err),
    });
    // Opened first so the tail below has a log to follow.
    await clients().openTask({ task: { runId, task: "build" } });
    const expected: string[] = [];
    const write = (i: number) => {
      writer.write("stdout", `writer line ${i}`, BASE_TS + i);
      expected.push(canonicalRecord(BASE_TS + i, "stdout", "build", `writer line ${i}`));
    };
    for (let i = 0; i < 10; i++) write(i);

    // Wait until part of the output is durable, then restart under the writer.
    const tail = clients().tail({ runId, task: "build" })[Symbol.asyncIterator]();
    await receive(tail, Buffer.byteLength(expected.slice(0, 3).join("")));
    void tail.return?.();
    await f.restart();

    for (let i = 10; i < 20; i++) write(i);
    await writer.complete({ result: "succeeded", exitCode: 0 });

    const after = clients();
    const stored = await readAll(after, runId, "build");
    expect(stored.text).toBe(expected.join(""));
    expect(stored.complete).toBe(true);
    expect((await after.getRun({ runId })).tasks[0]).toMatchObject({ state: TaskState.COMPLETED, recordCount: 20n });
    expect(retries.length).toBeGreaterThan(0);
  });
});
