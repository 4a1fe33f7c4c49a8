import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type SearchResponse, SearchStop } from "../../gen/joblog/v1/log_pb.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import {
  batchOf,
  createGrpcLogClient,
  expectConnectError,
  type GrpcLogClient,
  messages,
  type TestLine,
} from "../helpers/log-service-client.js";

let fixture: LeaderFixture;
let grpc: GrpcLogClient;
const RUN = "search-1";
const LINES = 5000;

// Line n's text; a few are special so each query has a known answer.
function textOf(n: number): string {
  if (n === 7) return "Error: disk \x1b[31mfull\x1b[0m";
  if (n === 4321) return "ERROR: timeout after 30s";
  if (n === 4999) return 'quote " and backslash \\ here';
  return `step ${n} ok`;
}

async function collect(responses: AsyncIterable<SearchResponse>) {
  const all: SearchResponse[] = [];
  for await (const r of responses) all.push(r);
  const last = all.at(-1);
  return {
    matches: all.flatMap((r) => r.matches.map((m) => ({ line: Number(m.lineNumber), offset: Number(m.offset), text: m.text }))),
    last,
    messages: all.length,
  };
}

beforeAll(async () => {
  // Small reads so a search crosses many slices, and a 1 KiB scan limit for a second leader below.
  fixture = await startTestLeader({ limits: { read_max_bytes: 128 * 1024 } });
  grpc = createGrpcLogClient(fixture.url);
  const lines: TestLine[] = Array.from({ length: LINES }, (_, i) => ({ text: textOf(i + 1), stream: "stdout", tsOffsetMs: 0 }));
  await grpc.client.push(messages({ task: { runId: RUN, task: "build" }, batch: batchOf(1, Date.now(), lines) }));
});

afterAll(async () => {
  grpc?.close();
  await fixture?.dispose();
});

describe("Search", () => {
  test("finds a substring in visible text, ignoring case by default, with offsets a Read starts at", async () => {
    const { matches, last } = await collect(grpc.client.search({ runId: RUN, task: "build", query: "error" }));
    expect(matches.map((m) => m.line)).toEqual([7, 4321]);
    expect(matches[0]?.text).toBe("Error: disk full");
    expect(last?.done).toBe(true);
    expect(last?.stoppedBy).toBe(SearchStop.UNSPECIFIED);
    expect(Number(last?.scannedOffset)).toBe(Number(last?.length));
    for (const m of matches) {
      const r = await grpc.client.read({ runId: RUN, task: "build", offset: BigInt(m.offset), maxBytes: 1 });
      expect(JSON.parse(Buffer.from(r.data).toString("utf8")).line).toBe(textOf(m.line));
    }
  });

  test("matches across colour codes, as the reader sees the line", async () => {
    const { matches } = await collect(grpc.client.search({ runId: RUN, task: "build", query: "disk full" }));
    expect(matches.map((m) => m.line)).toEqual([7]);
  });

  test("case-sensitive, regular expressions and characters JSON escapes", async () => {
    const sensitive = await collect(grpc.client.search({ runId: RUN, task: "build", query: "ERROR", caseSensitive: true }));
    expect(sensitive.matches.map((m) => m.line)).toEqual([4321]);
    const regex = await collect(grpc.client.search({ runId: RUN, task: "build", query: "^step 1[0-9]{3} ok$", regex: true }));
    expect(regex.matches.map((m) => m.line)).toEqual(Array.from({ length: 1000 }, (_, i) => 1000 + i));
    const escaped = await collect(grpc.client.search({ runId: RUN, task: "build", query: '" and backslash \\' }));
    expect(escaped.matches.map((m) => m.line)).toEqual([4999]);
  });

  test("stops at max_matches and says so", async () => {
    const { matches, last } = await collect(grpc.client.search({ runId: RUN, task: "build", query: "ok", maxMatches: 3 }));
    expect(matches.map((m) => m.line)).toEqual([1, 2, 3]);
    expect(last?.done).toBe(true);
    expect(last?.stoppedBy).toBe(SearchStop.MAX_MATCHES);
  });

  test("a pattern that backtracks exponentially elsewhere runs in linear time under RE2", async () => {
    const { last } = await collect(grpc.client.search({ runId: RUN, task: "build", query: "^(s+)+$", regex: true }));
    expect(last?.done).toBe(true);
  });

  test("refuses what it cannot search, naming the problem", async () => {
    await expectConnectError(collect(grpc.client.search({ runId: RUN, task: "build", query: "" })), Code.InvalidArgument, "query is empty");
    await expectConnectError(
      collect(grpc.client.search({ runId: RUN, task: "build", query: "(unclosed", regex: true })),
      Code.InvalidArgument,
      "regular expression",
    );
    await expectConnectError(
      collect(grpc.client.search({ runId: RUN, task: "build", query: "(a)\\1", regex: true })),
      Code.InvalidArgument,
      "RE2",
    );
    await expectConnectError(
      collect(grpc.client.search({ runId: RUN, task: "build", query: "x".repeat(1025) })),
      Code.InvalidArgument,
      "1024",
    );
    await expectConnectError(collect(grpc.client.search({ runId: RUN, task: "nope", query: "x" })), Code.NotFound, "task nope");
    await expectConnectError(collect(grpc.client.search({ runId: "no-run", task: "build", query: "x" })), Code.NotFound, "run no-run");
    await expectConnectError(collect(grpc.client.search({ runId: "../x", task: "build", query: "x" })), Code.InvalidArgument, "run_id");
  });

  test("cancelling the call stops the search", async () => {
    const controller = new AbortController();
    const seen: number[] = [];
    await expect(async () => {
      for await (const r of grpc.client.search({ runId: RUN, task: "build", query: "ok" }, { signal: controller.signal })) {
        seen.push(r.matches.length);
        controller.abort();
      }
    }).rejects.toThrow();
    expect(seen.length).toBe(1);
  });

  test("ends at search.max_scan_bytes and says so", async () => {
    const small = await startTestLeader({ search: { max_scan_bytes: 1000 }, limits: { read_max_bytes: 128 * 1024 } });
    const client = createGrpcLogClient(small.url);
    try {
      const lines: TestLine[] = Array.from({ length: 3000 }, (_, i) => ({ text: `step ${i + 1} ok`, stream: "stdout", tsOffsetMs: 0 }));
      await client.client.push(messages({ task: { runId: "scan-1", task: "build" }, batch: batchOf(1, Date.now(), lines) }));
      const { last } = await collect(client.client.search({ runId: "scan-1", task: "build", query: "nothing like this" }));
      expect(last?.stoppedBy).toBe(SearchStop.MAX_SCAN_BYTES);
      expect(Number(last?.scannedOffset)).toBeLessThan(Number(last?.length));
      await expectConnectError(
        client.client.locateLine({ runId: "scan-1", task: "build", lineNumber: 2999n }),
        Code.ResourceExhausted,
        "search.max_scan_bytes",
      );
    } finally {
      client.close();
      await small.dispose();
    }
  });
});

describe("LocateLine", () => {
  test("gives the offset where a line's record starts", async () => {
    for (const n of [1, 2, 7, 2500, LINES]) {
      const located = await grpc.client.locateLine({ runId: RUN, task: "build", lineNumber: BigInt(n) });
      expect(located.lineNumber).toBe(BigInt(n));
      const r = await grpc.client.read({ runId: RUN, task: "build", offset: located.offset, maxBytes: 1 });
      expect(r.offset).toBe(located.offset);
      expect(JSON.parse(Buffer.from(r.data).toString("utf8")).line).toBe(textOf(n));
    }
  });

  test("refuses line 0 and lines past the end", async () => {
    await expectConnectError(grpc.client.locateLine({ runId: RUN, task: "build", lineNumber: 0n }), Code.InvalidArgument, "line_number");
    await expectConnectError(
      grpc.client.locateLine({ runId: RUN, task: "build", lineNumber: BigInt(LINES + 1) }),
      Code.NotFound,
      `${LINES} lines`,
    );
  });
});
