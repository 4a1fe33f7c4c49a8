import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type BatchSchema, Stream } from "../../gen/joblog/v1/log_pb.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import {
  batchOf,
  createGrpcLogClient,
  expectConnectError,
  expectedJsonl,
  type GrpcLogClient,
  type LogClient,
  messages,
  readAll,
  type TestLine,
  testLines,
} from "../helpers/log-service-client.js";

/**
 * The packed (columnar) form of a batch stores exactly what the LogLine form
 * stores, obeys the same limits, and refuses columns that disagree, naming the
 * column, without touching what is stored.
 */

const MAX_LINES = 10;
const MAX_LINE_BYTES = 256;
const BASE_TS = Date.UTC(2026, 10, 29, 12, 0, 0, 5);

let f: LeaderFixture;
let g: GrpcLogClient;
let client: LogClient;

beforeAll(async () => {
  f = await startTestLeader({ limits: { max_lines_per_batch: MAX_LINES, max_line_bytes: MAX_LINE_BYTES } });
  g = createGrpcLogClient(f.url);
  client = g.client;
});

afterAll(async () => {
  g?.close();
  await f?.dispose();
});

type Batch = MessageInitShape<typeof BatchSchema>;

function packedOf(
  firstSeq: number,
  baseTsMs: number,
  lines: readonly TestLine[],
  columns: { streams?: boolean; times?: boolean } = {},
): Batch {
  const texts = lines.map((l) => Buffer.from(l.text, "utf8"));
  return {
    firstSeq: BigInt(firstSeq),
    baseTsUnixMs: BigInt(baseTsMs),
    packed: {
      text: Buffer.concat(texts),
      lengths: texts.map((t) => t.length),
      streams: columns.streams === false ? [] : lines.map((l) => (l.stream === "stderr" ? Stream.STDERR : Stream.STDOUT)),
      tsOffsetsMs: columns.times === false ? [] : lines.map((l) => l.tsOffsetMs),
    },
  };
}

describe("packed batches", () => {
  test("store byte for byte what the same lines as LogLine messages store, escapes, UTF-8 and long lines included", async () => {
    const lines: TestLine[] = [
      ...testLines("packed", 4),
      { text: "", stream: "stdout", tsOffsetMs: 7 },
      { text: "\u001b[31mred\u001b[0m and a \\ backslash", stream: "stderr", tsOffsetMs: 9 },
      { text: "x".repeat(MAX_LINE_BYTES + 40), stream: "stdout", tsOffsetMs: 11 },
    ];
    const asLines = { runId: "packed-same", task: "as-lines" };
    const asPacked = { runId: "packed-same", task: "as-packed" };
    await client.push(messages({ task: asLines, batch: batchOf(1, BASE_TS, lines) }));
    const response = await client.push(messages({ task: asPacked, batch: packedOf(1, BASE_TS, lines) }));
    expect(response.durableSeq).toBe(BigInt(lines.length));
    const viaLines = (await readAll(client, asLines.runId, asLines.task)).text;
    const viaPacked = (await readAll(client, asPacked.runId, asPacked.task)).text;
    expect(viaPacked).toBe(viaLines.replaceAll('"step":"as-lines"', '"step":"as-packed"'));
    expect(viaPacked).toContain("[joblog: line truncated, ");
  });

  test("empty stream and time columns mean stdout at the batch's time", async () => {
    const lines = testLines("defaults", 3);
    const ref = { runId: "packed-defaults", task: "build" };
    await client.push(messages({ task: ref, batch: packedOf(1, BASE_TS, lines, { streams: false, times: false }) }));
    const expected = expectedJsonl(
      "build",
      BASE_TS,
      lines.map((l) => ({ ...l, stream: "stdout" as const, tsOffsetMs: 0 })),
    );
    expect((await readAll(client, ref.runId, ref.task)).text).toBe(expected);
  });

  test("a resend of packed lines is acknowledged and not stored twice, like any batch", async () => {
    const lines = testLines("resend", 6);
    const ref = { runId: "packed-resend", task: "build" };
    await client.push(messages({ task: ref, batch: packedOf(1, BASE_TS, lines.slice(0, 4)) }));
    const response = await client.push(messages({ task: ref, batch: packedOf(3, BASE_TS, lines.slice(2)) }));
    expect(response.durableSeq).toBe(6n);
    expect((await readAll(client, ref.runId, ref.task)).text).toBe(expectedJsonl("build", BASE_TS, lines));
  });

  test("columns that disagree are INVALID_ARGUMENT naming the column, and nothing is stored", async () => {
    const ref = { runId: "packed-bad", task: "build" };
    const seeded = testLines("seed", 2);
    await client.push(messages({ task: ref, batch: packedOf(1, BASE_TS, seeded) }));
    const before = await readAll(client, ref.runId, ref.task);
    const lines = testLines("bad", 3);
    const short = packedOf(3, BASE_TS, lines);
    short.packed = { ...short.packed, lengths: [1, 2, 3] };
    await expectConnectError(
      client.push(messages({ task: ref, batch: short })),
      Code.InvalidArgument,
      "batch.packed.lengths",
      "batch.packed.text",
    );
    const streams = packedOf(3, BASE_TS, lines);
    streams.packed = { ...streams.packed, streams: [Stream.STDERR] };
    await expectConnectError(client.push(messages({ task: ref, batch: streams })), Code.InvalidArgument, "batch.packed.streams", "3 lines");
    const times = packedOf(3, BASE_TS, lines);
    times.packed = { ...times.packed, tsOffsetsMs: [1, 2] };
    await expectConnectError(client.push(messages({ task: ref, batch: times })), Code.InvalidArgument, "batch.packed.ts_offsets_ms");
    const both: Batch = {
      firstSeq: 3n,
      packed: packedOf(3, BASE_TS, lines).packed,
      lines: lines.map((l) => ({ text: Buffer.from(l.text) })),
    };
    await expectConnectError(client.push(messages({ task: ref, batch: both })), Code.InvalidArgument, "both lines and packed");
    expect(await readAll(client, ref.runId, ref.task)).toEqual(before);
  });

  test("the lines-per-batch limit counts packed lines", async () => {
    const ref = { runId: "packed-limit", task: "build" };
    await expectConnectError(
      client.push(messages({ task: ref, batch: packedOf(1, BASE_TS, testLines("many", MAX_LINES + 1)) })),
      Code.ResourceExhausted,
      `${MAX_LINES + 1} lines`,
      "limits.max_lines_per_batch",
    );
  });

  test("masks sent on the stream apply to packed lines", async () => {
    const ref = { runId: "packed-mask", task: "build" };
    const lines: TestLine[] = [
      { text: "token=hunter2-secret in the clear", stream: "stdout", tsOffsetMs: 0 },
      { text: "nothing here", stream: "stdout", tsOffsetMs: 1 },
    ];
    await client.push(messages({ task: ref, masks: ["hunter2-secret"], batch: packedOf(1, BASE_TS, lines) }));
    const stored = (await readAll(client, ref.runId, ref.task)).text;
    expect(stored).not.toContain("hunter2-secret");
    expect(stored).toContain("token=*** in the clear");
    expect(stored).toContain("nothing here");
  });
});
