import { truncateLine } from "../lines/line-limit.js";

/**
 * Canonical JSONL: `{"ts","stream","step","line"}` in that order, compact, `ts`
 * with milliseconds, one `\n` after each record. JSON escapes every control
 * character, so a raw `\n` in the output always ends a record; readers rely on
 * that to find record boundaries without parsing.
 */

export type StreamName = "stdout" | "stderr";

export interface RawLine {
  /** The line as printed, without terminator; any bytes. */
  text: Uint8Array;
  stream: StreamName;
  tsMs: number;
}

export interface EncodedBatch {
  jsonl: Buffer;
  records: number;
  /** Lines that were longer than the limit and were cut. */
  truncated: number;
}

// ignoreBOM keeps a leading U+FEFF as printed; invalid UTF-8 becomes U+FFFD, never an error.
const utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

// Lines of one batch differ in milliseconds, not seconds: format each second once and append
// the milliseconds from a table. `new Date(ms).toISOString()` per line was 12% of ingest CPU.
const MILLIS = Array.from({ length: 1000 }, (_, i) => `${String(i).padStart(3, "0")}Z`);
let cachedSecond = Number.NaN;
let secondPrefix = "";

/** `new Date(ms).toISOString()`, for the integer milliseconds records carry. */
export function isoTimestamp(time: number): string {
  const ms = Math.floor(time);
  const second = Math.floor(ms / 1000);
  if (second !== cachedSecond) {
    const iso = new Date(second * 1000).toISOString();
    cachedSecond = second;
    secondPrefix = iso.slice(0, iso.length - 4); // everything before "mmmZ"
  }
  return secondPrefix + MILLIS[ms - second * 1000];
}

/** Decodes a line as UTF-8, cutting it to `maxBytes` at a character boundary with a visible marker. */
export function decodeLine(text: Uint8Array, maxBytes: number): { line: string; truncated: boolean } {
  if (text.byteLength <= maxBytes) return { line: utf8.decode(text), truncated: false };
  return { line: utf8.decode(truncateLine(text, maxBytes)), truncated: true };
}

export function encodeRecord(tsMs: number, stream: StreamName, step: string, line: string): string {
  return `{"ts":"${isoTimestamp(tsMs)}","stream":"${stream}","step":${JSON.stringify(step)},"line":${JSON.stringify(line)}}\n`;
}

/** Encodes lines of one task into canonical JSONL, one string concatenation and one UTF-8 encode. */
export function encodeLines(step: string, lines: readonly RawLine[], maxLineBytes: number): EncodedBatch {
  const stepJson = JSON.stringify(step);
  let out = "";
  let truncated = 0;
  for (const l of lines) {
    const { line, truncated: cut } = decodeLine(l.text, maxLineBytes);
    if (cut) truncated++;
    out += `{"ts":"${isoTimestamp(l.tsMs)}","stream":"${l.stream}","step":${stepJson},"line":${JSON.stringify(line)}}\n`;
  }
  return { jsonl: Buffer.from(out, "utf8"), records: lines.length, truncated };
}

/** Byte position just after the `n`th record (0 for n = 0). */
export function afterRecords(jsonl: Buffer, n: number): number {
  let pos = 0;
  for (let i = 0; i < n; i++) {
    const nl = jsonl.indexOf(0x0a, pos);
    if (nl < 0) return jsonl.length;
    pos = nl + 1;
  }
  return pos;
}

/** Splits JSONL into pieces of about `target` bytes, each ending at a record boundary. */
export function splitAtRecords(jsonl: Buffer, target: number): Buffer[] {
  if (jsonl.length <= target) return [jsonl];
  const pieces: Buffer[] = [];
  let start = 0;
  while (start < jsonl.length) {
    if (jsonl.length - start <= target) {
      pieces.push(jsonl.subarray(start));
      break;
    }
    let end = jsonl.lastIndexOf(0x0a, start + target - 1) + 1;
    if (end <= start) end = jsonl.indexOf(0x0a, start + target) + 1 || jsonl.length;
    pieces.push(jsonl.subarray(start, end));
    start = end;
  }
  return pieces;
}
