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
 * The encoded lines of a Batch (its `packed` or its `lines` field) holding
 * `count` realistic lines (every tenth on stderr); `spreadTimes: false` stamps
 * every line with the batch's time.
 */
export function encodedLinesField(count: number, spreadTimes = true, form: BatchForm = "packed"): Uint8Array {
  const texts = benchLines(count).map((text) => Buffer.from(text));
  const stream = (i: number) => (i % 10 === 9 ? Stream.STDERR : Stream.STDOUT);
  const offset = (i: number) => (spreadTimes ? i % 50 : 0);
  const batch =
    form === "packed"
      ? create(BatchSchema, {
          packed: {
            text: Buffer.concat(texts),
            lengths: texts.map((t) => t.length),
            streams: texts.map((_, i) => stream(i)),
            tsOffsetsMs: spreadTimes ? texts.map((_, i) => offset(i)) : [],
          },
        })
      : create(BatchSchema, { lines: texts.map((text, i) => ({ text, stream: stream(i), tsOffsetMs: offset(i) })) });
  return toBinary(BatchSchema, batch);
}

/** How a batch carries its lines: `packed` columns (what the joblog worker sends) or a LogLine per line. */
export type BatchForm = "packed" | "lines";

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
