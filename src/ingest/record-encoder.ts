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

// How JSON.stringify writes each ASCII byte that it escapes (controls, quote, backslash); taken
// from JSON.stringify itself, so the fast path below cannot drift from it.
const ESCAPED: ReadonlyArray<Buffer | undefined> = Array.from({ length: 0x80 }, (_, b) =>
  b < 0x20 || b === 0x22 || b === 0x5c ? Buffer.from(JSON.stringify(String.fromCharCode(b)).slice(1, -1), "latin1") : undefined,
);
const CLOSE = Buffer.from('"}\n', "latin1");

/**
 * Writes a line's JSON string body straight from its bytes when they are all
 * ASCII, which CI output nearly always is; returns the new end, or -1 for a line
 * that needs UTF-8 decoding (replacement of invalid sequences included).
 */
function writeAsciiBody(text: Uint8Array, out: Buffer, at: number): number {
  let pos = at;
  for (let i = 0; i < text.length; i++) {
    const b = text[i] as number;
    if (b >= 0x80) return -1;
    const escaped = ESCAPED[b];
    if (escaped === undefined) out[pos++] = b;
    else pos += escaped.copy(out, pos);
  }
  return pos;
}

/**
 * Encodes lines of one task into canonical JSONL, written into one buffer.
 * Byte-for-byte what `JSON.stringify` of the decoded line gives, without
 * decoding ASCII lines to strings and encoding them back (measured twice as fast).
 */
export function encodeLines(step: string, lines: readonly RawLine[], maxLineBytes: number): EncodedBatch {
  const stepJson = JSON.stringify(step);
  let textBytes = 0;
  for (const l of lines) textBytes += l.text.byteLength;
  let out = Buffer.allocUnsafe(textBytes + lines.length * (64 + stepJson.length) + 64);
  let pos = 0;
  let truncated = 0;
  const ensure = (room: number) => {
    if (pos + room <= out.length) return;
    const grown = Buffer.allocUnsafe(Math.max(out.length * 2, pos + room));
    out.copy(grown, 0, 0, pos);
    out = grown;
  };
  for (const l of lines) {
    // 6 bytes per byte is the worst escape (\u001b); the head is under 64 + the step.
    ensure(64 + stepJson.length + Math.min(l.text.byteLength, maxLineBytes + 64) * 6 + 3);
    pos += out.write(`{"ts":"${isoTimestamp(l.tsMs)}","stream":"${l.stream}","step":${stepJson},"line":"`, pos, "latin1");
    const end = l.text.byteLength <= maxLineBytes ? writeAsciiBody(l.text, out, pos) : -1;
    if (end >= 0) {
      pos = end;
    } else {
      const { line, truncated: cut } = decodeLine(l.text, maxLineBytes);
      if (cut) truncated++;
      const body = JSON.stringify(line);
      ensure(Buffer.byteLength(body) + 3);
      pos += out.write(body.slice(1, -1), pos, "utf8");
    }
    pos += CLOSE.copy(out, pos);
  }
  // Tails and the seal thread keep these bytes: do not pin much spare capacity with them.
  const jsonl = out.length - pos > pos / 4 ? Buffer.from(out.subarray(0, pos)) : out.subarray(0, pos);
  return { jsonl, records: lines.length, truncated };
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
