import { isUtf8 } from "node:buffer";
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

/** `YYYY-MM-DDTHH:MM:SS.` of a Unix second: all of `toISOString()` before the milliseconds. */
function isoSecond(second: number): string {
  const iso = new Date(second * 1000).toISOString();
  return iso.slice(0, iso.length - 4);
}

/** `new Date(ms).toISOString()`, for the integer milliseconds records carry. */
export function isoTimestamp(time: number): string {
  const ms = Math.floor(time);
  const second = Math.floor(ms / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    secondPrefix = isoSecond(second);
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
const ESCAPED: ReadonlyArray<Uint8Array | undefined> = Array.from({ length: 0x80 }, (_, b) =>
  b < 0x20 || b === 0x22 || b === 0x5c ? Buffer.from(JSON.stringify(String.fromCharCode(b)).slice(1, -1), "latin1") : undefined,
);
/** Per byte: 0 copied as is, 1 escaped, 2 part of a multi-byte UTF-8 character (or invalid). */
const BYTE_CLASS = Uint8Array.from({ length: 256 }, (_, b) => (b >= 0x80 ? 2 : ESCAPED[b] ? 1 : 0));
const CLOSE = Buffer.from('"}\n', "latin1");
const TS_OPEN = Buffer.from('{"ts":"', "latin1");
const DIGIT_0 = 0x30;

/**
 * Writes a line's JSON string body straight from its bytes: ASCII is copied or
 * escaped byte by byte, and valid UTF-8 is copied as is (JSON.stringify leaves
 * non-ASCII characters alone). Returns the new end, or -1 for a line that is not
 * valid UTF-8 and needs decoding (invalid sequences become U+FFFD).
 */
function writeBody(text: Uint8Array, start: number, end: number, out: Buffer, at: number): number {
  // Most lines need no escape: find the first byte that does, copy up to it natively.
  let clean = start;
  while (clean < end && BYTE_CLASS[text[clean] as number] === 0) clean++;
  out.set(clean === end && start === 0 && end === text.length ? text : text.subarray(start, clean), at);
  let pos = at + (clean - start);
  let multiByte = false;
  for (let i = clean; i < end; i++) {
    const b = text[i] as number;
    const kind = BYTE_CLASS[b];
    if (kind === 0) {
      out[pos++] = b;
    } else if (kind === 1) {
      const escaped = ESCAPED[b] as Uint8Array;
      for (let j = 0; j < escaped.length; j++) out[pos++] = escaped[j] as number;
    } else {
      multiByte = true;
      out[pos++] = b;
    }
  }
  // Checked once per line that has any byte above 0x7f: a natively validated copy is the common case.
  if (multiByte && !isUtf8(text.subarray(start, end))) return -1;
  return pos;
}

/** What every record of one step writes before its line, per stream, for the second last used. */
interface StepPrefixes {
  /** `","stream":"stdout","step":"…","line":"` and its stderr twin. */
  readonly stdoutHead: Buffer;
  readonly stderrHead: Buffer;
  second: number;
  /**
   * Everything a record of `second` writes before its line, `{"ts":"…mmmZ","stream":…,"line":"`,
   * per stream: one copy and three digits per record instead of four small copies.
   */
  stdoutPrefix: Buffer;
  stderrPrefix: Buffer;
  /** Where the milliseconds' first digit is in a prefix. */
  millisAt: number;
}

// Kept across batches: a task pushing small batches built its prefixes anew for each
// one (five buffers a batch). Bounded; cleared whole when full, which costs a rebuild.
const PREFIXES_KEPT = 4096;
const prefixesByStep = new Map<string, StepPrefixes>();

function stepPrefixes(step: string): StepPrefixes {
  let prefixes = prefixesByStep.get(step);
  if (prefixes) return prefixes;
  if (prefixesByStep.size >= PREFIXES_KEPT) prefixesByStep.clear();
  const stepJson = JSON.stringify(step);
  prefixes = {
    stdoutHead: Buffer.from(`","stream":"stdout","step":${stepJson},"line":"`, "utf8"),
    stderrHead: Buffer.from(`","stream":"stderr","step":${stepJson},"line":"`, "utf8"),
    second: Number.NaN,
    stdoutPrefix: Buffer.alloc(0),
    stderrPrefix: Buffer.alloc(0),
    millisAt: 0,
  };
  prefixesByStep.set(step, prefixes);
  return prefixes;
}

function newSecond(prefixes: StepPrefixes, second: number): void {
  const secondText = Buffer.from(isoSecond(second), "latin1");
  const millis = Buffer.from("000Z", "latin1");
  prefixes.second = second;
  prefixes.millisAt = TS_OPEN.length + secondText.length;
  prefixes.stdoutPrefix = Buffer.concat([TS_OPEN, secondText, millis, prefixes.stdoutHead]);
  prefixes.stderrPrefix = Buffer.concat([TS_OPEN, secondText, millis, prefixes.stderrHead]);
}

/**
 * Canonical JSONL written into one growing buffer, record by record: byte for
 * byte what `JSON.stringify` of the decoded line gives, without decoding lines to
 * strings and encoding them back. The parts every record of the batch shares are
 * encoded once; the timestamp's second once per second.
 */
class JsonlWriter {
  private out: Buffer;
  private pos = 0;
  truncated = 0;
  private readonly prefixes: StepPrefixes;

  constructor(
    step: string,
    textBytes: number,
    count: number,
    private readonly maxLineBytes: number,
  ) {
    this.prefixes = stepPrefixes(step);
    this.out = Buffer.allocUnsafe(textBytes + count * (40 + this.prefixes.stdoutHead.length) + 64);
  }

  /**
   * Appends the record of line `text[start, end)`. `plain`: the caller knows the line
   * holds no byte to escape and none above 0x7f, so it is copied without a look.
   */
  record(tsMs: number, stream: StreamName, text: Uint8Array, start: number, end: number, plain = false): void {
    const length = end - start;
    // 6 bytes per byte is the worst escape (\u001b); the prefix and the close are under 40 beside the head.
    const prefixes = this.prefixes;
    this.ensure(40 + prefixes.stdoutHead.length + Math.min(length, this.maxLineBytes + 64) * 6);
    const out = this.out;
    let pos = this.pos;
    const ms = Math.floor(tsMs);
    const second = Math.floor(ms / 1000);
    if (second !== prefixes.second) newSecond(prefixes, second);
    const prefix = stream === "stderr" ? prefixes.stderrPrefix : prefixes.stdoutPrefix;
    out.set(prefix, pos);
    const milli = ms - second * 1000;
    const digits = pos + prefixes.millisAt;
    out[digits] = DIGIT_0 + Math.floor(milli / 100);
    out[digits + 1] = DIGIT_0 + (Math.floor(milli / 10) % 10);
    out[digits + 2] = DIGIT_0 + (milli % 10);
    pos += prefix.length;
    let after: number;
    if (plain && length <= this.maxLineBytes) {
      out.set(text.subarray(start, end), pos);
      after = pos + length;
    } else {
      after = length <= this.maxLineBytes ? writeBody(text, start, end, out, pos) : -1;
    }
    if (after >= 0) {
      pos = after;
    } else {
      const { line, truncated: cut } = decodeLine(text.subarray(start, end), this.maxLineBytes);
      if (cut) this.truncated++;
      const body = JSON.stringify(line);
      this.pos = pos;
      this.ensure(Buffer.byteLength(body) + 3);
      pos += this.out.write(body.slice(1, -1), pos, "utf8");
    }
    this.out.set(CLOSE, pos);
    this.pos = pos + CLOSE.length;
  }

  finish(records: number): EncodedBatch {
    const { out, pos } = this;
    // Tails and the seal thread keep these bytes: do not pin much spare capacity with them.
    const jsonl = out.length - pos > pos / 4 ? Buffer.from(out.subarray(0, pos)) : out.subarray(0, pos);
    return { jsonl, records, truncated: this.truncated };
  }

  private ensure(room: number): void {
    if (this.pos + room <= this.out.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.out.length * 2, this.pos + room));
    this.out.copy(grown, 0, 0, this.pos);
    this.out = grown;
  }
}

/** Encodes lines of one task into canonical JSONL, written into one buffer. */
export function encodeLines(step: string, lines: readonly RawLine[], maxLineBytes: number): EncodedBatch {
  let textBytes = 0;
  for (const l of lines) textBytes += l.text.byteLength;
  const writer = new JsonlWriter(step, textBytes, lines.length, maxLineBytes);
  for (const l of lines) writer.record(l.tsMs, l.stream, l.text, 0, l.text.byteLength);
  return writer.finish(lines.length);
}

/**
 * A batch's lines as columns (the wire's PackedLines): line i is the next
 * `lengths[i]` bytes of `text`. Validated by the caller: the lengths add up to
 * `text`, and `stderr` and `tsOffsetsMs` are empty or one entry per line.
 */
export interface LineColumns {
  text: Uint8Array;
  lengths: readonly number[];
  /** Whether line i is on stderr. */
  isStderr(i: number): boolean;
  baseTsMs: number;
  /** Per line, milliseconds after `baseTsMs`; empty: all at `baseTsMs`. */
  tsOffsetsMs: readonly number[];
}

/** Encodes columnar lines without an object per line: the fast path of ingest. */
export function encodeColumns(step: string, columns: LineColumns, maxLineBytes: number): EncodedBatch {
  const { text, lengths, baseTsMs, tsOffsetsMs } = columns;
  const count = lengths.length;
  const writer = new JsonlWriter(step, text.byteLength, count, maxLineBytes);
  const timed = tsOffsetsMs.length > 0;
  // One native regular-expression scan of the whole batch finds the bytes that need a look (to
  // escape, or to validate as UTF-8); lines before the next such byte are copied as they are.
  // Scanning each line byte by byte in JavaScript was the largest part of encoding.
  const latin1 = Buffer.from(text.buffer, text.byteOffset, text.byteLength).toString("latin1");
  const special = NEEDS_A_LOOK;
  special.lastIndex = 0;
  let nextSpecial = special.test(latin1) ? special.lastIndex - 1 : Number.POSITIVE_INFINITY;
  let start = 0;
  for (let i = 0; i < count; i++) {
    const end = start + (lengths[i] as number);
    const plain = nextSpecial >= end;
    writer.record(
      timed ? baseTsMs + (tsOffsetsMs[i] as number) : baseTsMs,
      columns.isStderr(i) ? "stderr" : "stdout",
      text,
      start,
      end,
      plain,
    );
    if (!plain) {
      special.lastIndex = end;
      nextSpecial = special.test(latin1) ? special.lastIndex - 1 : Number.POSITIVE_INFINITY;
    }
    start = end;
  }
  return writer.finish(count);
}

/** A byte JSON escapes (controls, quote, backslash) or one of a multi-byte character, in a latin1 view of UTF-8. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what JSON escapes
const NEEDS_A_LOOK = /[\u0000-\u001f"\\\u0080-\u00ff]/g;

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
