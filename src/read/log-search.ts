import { RE2JS } from "re2js";
import { invalidArgument, notFound, resourceExhausted, unavailable } from "../errors/domain-error.js";
import { visibleText } from "../lines/terminal-text.js";
import type { LogReader } from "./log-reader.js";

/**
 * Search and line lookup over a whole task log. Both walk the log through
 * LogReader.read, so they cover every tier the reader serves from, and both
 * count records from the start, which is how a line gets its number.
 */

export const MAX_QUERY_LENGTH = 1024;
/** Matched text sent back per line; a reader opens the line itself for more. */
export const MAX_MATCH_TEXT = 1024;

export interface SearchLimits {
  maxMatches: number;
  maxScanBytes: number;
  maxDurationMs: number;
  /** Bytes fetched per read while scanning. */
  readBytes: number;
}

export interface SearchQuery {
  query: string;
  regex: boolean;
  caseSensitive: boolean;
}

export interface LineMatch {
  offset: number;
  lineNumber: number;
  text: string;
}

export type SearchStopReason = "max_matches" | "max_scan_bytes" | "max_duration";

export interface SearchProgress {
  matches: LineMatch[];
  scannedOffset: number;
  length: number;
  done: boolean;
  stoppedBy?: SearchStopReason;
}

const NEWLINE = 0x0a;
// A long search with nothing found still tells the reader how far it got.
const PROGRESS_EVERY_BYTES = 16 * 1024 * 1024;

/** A predicate on a line's visible text; INVALID_ARGUMENT for a query that cannot be used. */
export function compileQuery(q: SearchQuery): (text: string) => boolean {
  if (q.query.length === 0) throw invalidArgument("query is empty");
  if (q.query.length > MAX_QUERY_LENGTH) {
    throw invalidArgument(`query is ${q.query.length} characters long; the limit is ${MAX_QUERY_LENGTH}`);
  }
  if (q.regex) {
    // RE2 matches in time linear in the text: no pattern can make a search backtrack for hours.
    let pattern: RE2JS;
    try {
      pattern = RE2JS.compile(q.query, q.caseSensitive ? 0 : RE2JS.CASE_INSENSITIVE);
    } catch (err) {
      throw invalidArgument(`query is not a valid RE2 regular expression: ${err instanceof Error ? err.message : String(err)}`);
    }
    return (text) => pattern.matcher(text).find();
  }
  if (q.caseSensitive) {
    const needle = q.query;
    return (text) => text.includes(needle);
  }
  const needle = q.query.toLowerCase();
  return (text) => text.toLowerCase().includes(needle);
}

interface Walk {
  /** Stop reading (the caller went away or the leader is stopping). */
  signal: AbortSignal;
  readBytes: number;
}

/** Whole-record slices of a log from 0 up to `end`. */
async function* slices(reader: LogReader, run: string, task: string, end: number, walk: Walk) {
  let offset = 0;
  while (offset < end && !walk.signal.aborted) {
    const r = await reader.read(run, task, offset, walk.readBytes);
    if (r.data.length === 0) return;
    const data = r.offset + r.data.length > end ? r.data.subarray(0, end - r.offset) : r.data;
    yield { offset: r.offset, data };
    offset = r.offset + data.length;
  }
}

/**
 * Streams the lines of a task log that match, in order, one progress message
 * per slice read that found something (and a last one with `done`). Bounded
 * by matches, bytes scanned and time; stops when `signal` aborts.
 */
export async function* searchLog(
  reader: LogReader,
  run: string,
  task: string,
  query: SearchQuery,
  limits: SearchLimits,
  signal: AbortSignal,
): AsyncGenerator<SearchProgress> {
  const matches = compileQuery(query);
  const { state } = await reader.state(run, task);
  const length = state.length;
  const deadline = Date.now() + limits.maxDurationMs;
  let lineNumber = 0;
  let scanned = 0;
  let reported = 0;
  let found = 0;
  let stoppedBy: SearchStopReason | undefined;

  for await (const slice of slices(reader, run, task, length, { signal, readBytes: limits.readBytes })) {
    const batch: LineMatch[] = [];
    const data = slice.data;
    let pos = 0;
    while (pos < data.length) {
      const nl = data.indexOf(NEWLINE, pos);
      const end = nl < 0 ? data.length : nl;
      lineNumber++;
      const visible = visibleText((JSON.parse(data.toString("utf8", pos, end)) as { line: string }).line);
      const recordOffset = slice.offset + pos;
      pos = end + 1;
      if (!matches(visible)) continue;
      batch.push({ offset: recordOffset, lineNumber, text: visible.slice(0, MAX_MATCH_TEXT) });
      if (++found >= limits.maxMatches) {
        stoppedBy = "max_matches";
        break;
      }
    }
    scanned = slice.offset + Math.min(pos, data.length);
    if (!stoppedBy && scanned < length) {
      if (scanned >= limits.maxScanBytes) stoppedBy = "max_scan_bytes";
      else if (Date.now() >= deadline) stoppedBy = "max_duration";
    }
    if (stoppedBy) {
      yield { matches: batch, scannedOffset: scanned, length, done: true, stoppedBy };
      return;
    }
    if (batch.length > 0 || scanned - reported >= PROGRESS_EVERY_BYTES) {
      reported = scanned;
      yield { matches: batch, scannedOffset: scanned, length, done: false };
    }
  }
  if (signal.aborted) return;
  yield { matches: [], scannedOffset: scanned, length, done: true };
}

/** Byte offset of line `lineNumber` (records counted from 1), found by counting records from the start. */
export async function locateLine(
  reader: LogReader,
  run: string,
  task: string,
  lineNumber: number,
  limits: Pick<SearchLimits, "maxScanBytes" | "readBytes">,
  signal: AbortSignal,
): Promise<number> {
  if (lineNumber < 1) throw invalidArgument("line_number must be 1 or more");
  const { state } = await reader.state(run, task);
  if (lineNumber > state.records)
    throw notFound(`line ${lineNumber} is past the end of task ${task} of run ${run} (${state.records} lines)`);
  let seen = 0;
  for await (const slice of slices(reader, run, task, state.length, { signal, readBytes: limits.readBytes })) {
    let pos = 0;
    while (pos < slice.data.length) {
      if (++seen === lineNumber) return slice.offset + pos;
      const nl = slice.data.indexOf(NEWLINE, pos);
      if (nl < 0) break;
      pos = nl + 1;
    }
    if (slice.offset + slice.data.length >= limits.maxScanBytes) {
      throw resourceExhausted(
        `line ${lineNumber} lies beyond the first ${limits.maxScanBytes} bytes a lookup may scan (search.max_scan_bytes)`,
      );
    }
  }
  if (signal.aborted) throw unavailable(`the lookup of line ${lineNumber} was cancelled`);
  throw notFound(`line ${lineNumber} is past the end of task ${task} of run ${run}`);
}
