import type { MessageInitShape } from "@bufbuild/protobuf";
import { type BatchSchema, Stream } from "../../gen/joblog/v1/log_pb.js";

export interface BatchLine {
  text: string;
  stream: Stream;
  tsOffsetMs: number;
}

/** The lines of a batch the worker built, from whichever form it used (`lines` or `packed`). */
export function linesOfBatch(message: MessageInitShape<typeof BatchSchema> | undefined): BatchLine[] {
  const packed = message?.packed;
  if (packed) {
    const text = Buffer.from(packed.text ?? []);
    const lines: BatchLine[] = [];
    let start = 0;
    for (const [i, length] of (packed.lengths ?? []).entries()) {
      lines.push({
        text: text.subarray(start, start + length).toString(),
        stream: packed.streams?.[i] ?? Stream.STDOUT,
        tsOffsetMs: packed.tsOffsetsMs?.[i] ?? 0,
      });
      start += length;
    }
    return lines;
  }
  return (message?.lines ?? []).map((l) => ({
    text: Buffer.from(l.text ?? []).toString(),
    stream: l.stream ?? Stream.STDOUT,
    tsOffsetMs: l.tsOffsetMs ?? 0,
  }));
}
