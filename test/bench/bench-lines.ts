import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { BatchSchema, PushRequestSchema, Result, Stream } from "../../gen/joblog/v1/log_pb.js";
import { encodeRecord } from "../../src/ingest/record-encoder.js";
import { createCiLogLines } from "./ci-log-lines.js";

/**
 * What the benchmark clients send, built once so the clients cost next to
 * nothing per line: realistic CI lines (about 100 bytes each), their LogLine
 * encoding, and whole Push messages framed around it with only `first_seq`
 * and the timestamp filled in per batch.
 */

let lines: string[] | undefined;
export function benchLines(count = 20_000): string[] {
  if (!lines || lines.length < count) {
    const next = createCiLogLines(7);
    lines = Array.from({ length: count }, next);
  }
  return lines.slice(0, count);
}

/**
 * The encoded `lines` field of a Batch holding `count` realistic lines (every
 * tenth on stderr); `spreadTimes: false` stamps every line with the batch's time.
 */
export function encodedLinesField(count: number, spreadTimes = true): Uint8Array {
  const batch = create(BatchSchema, {
    lines: benchLines(count).map((text, i) => ({
      text: Buffer.from(text),
      stream: i % 10 === 9 ? Stream.STDERR : Stream.STDOUT,
      tsOffsetMs: spreadTimes ? i % 50 : 0,
    })),
  });
  return toBinary(BatchSchema, batch);
}

/** A PushRequest carrying a batch: `first_seq`, the pre-encoded lines, the base timestamp. */
export function pushFrame(firstSeq: number, linesField: Uint8Array, baseTsMs: number): Buffer {
  const batch = new BinaryWriter()
    .tag(1, WireType.Varint)
    .uint64(firstSeq)
    .raw(linesField)
    .tag(3, WireType.Varint)
    .int64(baseTsMs)
    .finish();
  return Buffer.from(new BinaryWriter().tag(2, WireType.LengthDelimited).bytes(batch).finish());
}

/** The first message of a Push stream: which task. */
export function pushOpening(runId: string, task: string): Buffer {
  return Buffer.from(toBinary(PushRequestSchema, create(PushRequestSchema, { task: { runId, task, workflow: "bench" } })));
}

/** A Push message completing the task as succeeded. */
export function completionFrame(): Buffer {
  return Buffer.from(toBinary(PushRequestSchema, create(PushRequestSchema, { complete: { result: Result.SUCCEEDED, exitCode: 0 } })));
}

let tailPayload: { data: Uint8Array; lines: number } | undefined;
/** About 1 MiB of canonical JSONL records of realistic lines: what the bare Tail sends per message. */
export function baselineTailPayload(): { data: Uint8Array; lines: number } {
  if (!tailPayload) {
    let text = "";
    let count = 0;
    for (const line of benchLines(20_000)) {
      const record = encodeRecord(Date.UTC(2026, 0, 1), "stdout", "build", line);
      if (text.length + record.length > 1024 * 1024) break;
      text += record;
      count++;
    }
    tailPayload = { data: Buffer.from(text), lines: count };
  }
  return tailPayload;
}
