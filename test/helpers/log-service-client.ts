import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Client, type Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { expect } from "vitest";
import { LogService, type PushRequestSchema, Stream, type TailResponse } from "../../gen/joblog/v1/log_pb.js";
import { expectedRecord } from "./expected-jsonl.js";

/**
 * A Connect client for LogService over gRPC on HTTP/2 — the one transport that
 * carries every method, Push included — plus what tests of the API share:
 * canonical records to compare bytes with, and error assertions.
 */

export type LogClient = Client<typeof LogService>;
export type PushMessage = MessageInitShape<typeof PushRequestSchema>;
export type StreamName = "stdout" | "stderr";

export interface GrpcLogClient {
  client: LogClient;
  /** Closes the client's HTTP/2 connection. */
  close(): void;
}

/** A gRPC client on its own HTTP/2 connection, closed by `close()`; with `token`, it sends it on every call. */
export function createGrpcLogClient(baseUrl: string, token?: string): GrpcLogClient {
  const sessionManager = new Http2SessionManager(baseUrl);
  const bearer: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const client = createClient(LogService, createGrpcTransport({ baseUrl, sessionManager, interceptors: token ? [bearer] : [] }));
  return { client, close: () => sessionManager.abort() };
}

/** One canonical JSONL record, exactly as the leader stores it. */
export const canonicalRecord = expectedRecord;

export interface TestLine {
  text: string;
  stream: StreamName;
  tsOffsetMs: number;
}

/** `count` distinct lines alternating stdout and stderr, each 1 ms after the previous. */
export function testLines(prefix: string, count: number): TestLine[] {
  return Array.from({ length: count }, (_, i) => ({
    text: `${prefix} line ${i + 1} ✓ "quoted"\ttab`,
    stream: i % 2 === 0 ? "stdout" : "stderr",
    tsOffsetMs: i,
  }));
}

/** The Batch message carrying `lines`, numbered from `firstSeq`. */
export function batchOf(firstSeq: number, baseTsMs: number, lines: readonly TestLine[]): NonNullable<PushMessage["batch"]> {
  return {
    firstSeq: BigInt(firstSeq),
    baseTsUnixMs: BigInt(baseTsMs),
    lines: lines.map((l) => ({
      text: Buffer.from(l.text, "utf8"),
      stream: l.stream === "stderr" ? Stream.STDERR : Stream.STDOUT,
      tsOffsetMs: l.tsOffsetMs,
    })),
  };
}

/** The canonical JSONL the leader must store for `lines` pushed with `baseTsMs`. */
export function expectedJsonl(step: string, baseTsMs: number, lines: readonly TestLine[]): string {
  return lines.map((l) => canonicalRecord(baseTsMs + l.tsOffsetMs, l.stream, step, l.text)).join("");
}

/** Messages as an async iterable, for a client-streaming call. */
export async function* messages(...items: PushMessage[]): AsyncGenerator<PushMessage> {
  for (const item of items) yield item;
}

/**
 * An open-ended client stream: the test decides when each message goes out and
 * when the stream ends. Holds at most what the test pushes (tests push a few).
 */
export interface PushStream extends AsyncIterable<PushMessage> {
  send(message: PushMessage): void;
  end(): void;
}

export function createPushStream(): PushStream {
  const queued: PushMessage[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  return {
    send(message) {
      queued.push(message);
      notify();
    },
    end() {
      ended = true;
      notify();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const next = queued.shift();
        if (next) {
          yield next;
          continue;
        }
        if (ended) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    },
  };
}

/** Reads a whole task log through Read, following `next_offset` until `length`. */
export async function readAll(
  client: LogClient,
  runId: string,
  task: string,
): Promise<{ text: string; length: number; complete: boolean }> {
  const parts: Buffer[] = [];
  let offset = 0n;
  for (let i = 0; i < 1000; i++) {
    const r = await client.read({ runId, task, offset });
    parts.push(Buffer.from(r.data));
    offset = r.nextOffset;
    if (r.nextOffset >= r.length) return { text: Buffer.concat(parts).toString("utf8"), length: Number(r.length), complete: r.complete };
  }
  throw new Error(`read of ${runId}/${task} did not reach the end in 1000 calls`);
}

/** Collects a Tail until its `complete` message; checks offsets are contiguous and only the last message completes. */
export async function tailToEnd(responses: AsyncIterable<TailResponse>, from = 0n): Promise<string> {
  const parts: Buffer[] = [];
  let expectedOffset = from;
  let messagesSeen = 0;
  for await (const r of responses) {
    messagesSeen++;
    if (messagesSeen > 10_000) throw new Error("tail sent more than 10000 messages");
    expect(r.offset).toBe(expectedOffset);
    expect(r.nextOffset).toBe(r.offset + BigInt(r.data.length));
    expectedOffset = r.nextOffset;
    parts.push(Buffer.from(r.data));
    if (r.complete) return Buffer.concat(parts).toString("utf8");
  }
  throw new Error("tail ended without a complete message");
}

/** Parses canonical JSONL into records. */
export function parseRecords(jsonl: string): Array<{ ts: string; stream: string; step: string; line: string }> {
  return jsonl
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as { ts: string; stream: string; step: string; line: string });
}

/**
 * Asserts that `call` fails with `code` and that the error's message contains
 * each of `parts` (the field, limit or id it must name); returns the error.
 */
export async function expectConnectError(call: Promise<unknown>, code: Code, ...parts: string[]): Promise<ConnectError> {
  let caught: unknown;
  try {
    await call;
  } catch (err) {
    caught = err;
  }
  expect(caught, "the call should have failed").toBeInstanceOf(ConnectError);
  const err = caught as ConnectError;
  expect(err.code, `the code of "${err.rawMessage}"`).toBe(code);
  for (const part of parts) expect(err.rawMessage).toContain(part);
  return err;
}
