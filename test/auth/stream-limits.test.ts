import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, expect, test } from "vitest";
import WebSocket from "ws";
import type { TailResponse } from "../../gen/joblog/v1/log_pb.js";
import { grpcCode, LeaderClient } from "../../src/client/leader-client.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import { makeTestTokens, pushWith } from "../helpers/test-tokens.js";

const tokens = makeTestTokens();
type TokenName = keyof typeof tokens.plain;
let f: LeaderFixture;
const clients: LeaderClient[] = [];
const client = (token: TokenName) => {
  const c = new LeaderClient(f.url, { token: tokens.plain[token] });
  clients.push(c);
  return c;
};

beforeAll(async () => {
  f = await startTestLeader({
    limits: { max_push_streams_per_token: 1, max_tail_subscribers_per_token: 1, max_tail_subscribers: 2 },
    auth: { tokens: tokens.entries },
  } as Parameters<typeof startTestLeader>[0]);
  // A running task with a line: a tail's first message is that line, and it stays open after it.
  await pushWith(f.url, { token: tokens.plain.worker }, { runId: "limits-run", workspace: "ci" }, ["tail me"], { keepOpen: true });
});

afterAll(async () => {
  for (const c of clients) c.close();
  await f?.dispose();
});

async function failure(call: Promise<unknown>): Promise<{ code: status | undefined; details: string }> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "the call should have failed").toBeDefined();
  return { code: grpcCode(err), details: (err as { details?: string }).details ?? "" };
}

/** Waits (bounded) until `attempt` succeeds: a released stream is counted down when the leader sees it end. */
async function eventually<T>(attempt: () => Promise<T>): Promise<T> {
  let last: unknown;
  for (let i = 0; i < 100; i++) {
    try {
      return await attempt();
    } catch (err) {
      last = err;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  throw last;
}

/** A tail that has received its first message (so the leader counts it), and a way to end it. */
async function openTail(token: TokenName): Promise<{ end(): Promise<void> }> {
  const abort = new AbortController();
  const iterator = client(token).tail({ runId: "limits-run", task: "build" }, { signal: abort.signal });
  const first: IteratorResult<TailResponse> = await iterator.next();
  expect(first.done).toBe(false);
  return {
    end: async () => {
      abort.abort();
      await iterator.return(undefined);
    },
  };
}

test("a second concurrent Push stream of one token is RESOURCE_EXHAUSTED naming the limit; ending the first frees it", async () => {
  const worker = client("worker");
  const first = worker.push();
  first.write({ task: { runId: "limits-run", task: "first" } });
  // Its handler has opened the task once the run lists it, so the stream is counted by then.
  await eventually(async () => {
    const run = await client("admin").getRun({ runId: "limits-run" });
    if (!run.tasks.some((t) => t.name === "first")) throw new Error("not yet");
  });
  const second = worker.push();
  second.write({ task: { runId: "limits-run", task: "second" } });
  const refused = await failure(second.end());
  expect(refused.code).toBe(status.RESOURCE_EXHAUSTED);
  expect(refused.details).toContain("limits.max_push_streams_per_token");
  expect(refused.details).toContain("worker");
  // Another token has its own count.
  const other = client("workerCi").push();
  other.write({ task: { runId: "limits-run", task: "other" } });
  await other.end();
  await first.end();
  await eventually(async () => {
    const third = worker.push();
    third.write({ task: { runId: "limits-run", task: "third" } });
    await third.end();
  });
});

test("Tail subscriptions are limited per token and in total, each naming its key; ending one frees it", async () => {
  const reader = await openTail("reader");
  const perToken = await failure(openTail("reader"));
  expect(perToken.code).toBe(status.RESOURCE_EXHAUSTED);
  expect(perToken.details).toContain("limits.max_tail_subscribers_per_token");
  const second = await openTail("readerCi");
  const total = await failure(openTail("admin"));
  expect(total.code).toBe(status.RESOURCE_EXHAUSTED);
  expect(total.details).toContain("limits.max_tail_subscribers");
  expect(total.details).not.toContain("per_token");
  await reader.end();
  const admin = await eventually(() => openTail("admin"));
  await admin.end();
  await second.end();
});

test("a WebSocket log stream holds a Tail subscription of its token: refused with 429 at the limit, counted while open", async () => {
  const openSocket = (token: TokenName) =>
    new Promise<{ status: number; socket: WebSocket }>((resolve) => {
      const socket = new WebSocket(`ws://${f.leader.address}/api/jobs/limits-run/logs/stream`, {
        headers: { authorization: `Bearer ${tokens.plain[token]}` },
      });
      socket.on("error", () => undefined); // a refused handshake also reports itself as an error
      socket.on("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => {
          body += chunk.toString();
        });
        res.on("end", () => {
          expect(body).toContain("limits.max_tail_subscribers_per_token");
          resolve({ status: res.statusCode ?? 0, socket });
        });
      });
      socket.on("open", () => resolve({ status: 101, socket }));
    });
  const tail = await openTail("reader");
  expect((await openSocket("reader")).status).toBe(429);
  await tail.end();
  const { status, socket } = await eventually(async () => {
    const opened = await openSocket("reader");
    if (opened.status !== 101) throw new Error(`status ${opened.status}`);
    return opened;
  });
  expect(status).toBe(101);
  const perToken = await failure(openTail("reader"));
  expect(perToken.details).toContain("limits.max_tail_subscribers_per_token");
  const closed = new Promise((resolve) => socket.once("close", resolve));
  socket.close();
  await closed;
  const again = await eventually(() => openTail("reader"));
  await again.end();
});
