/**
 * Key layout of the log store. A task's chunks share the prefix
 * `C run \0 task \0` followed by the chunk's start offset as 8 big-endian bytes,
 * so one task is one contiguous, offset-ordered range: a read at any offset is a
 * seek, and dropping a task's buffer is one range delete. Identifiers cannot
 * contain NUL, so the separators keep distinct tasks apart.
 */

const CHUNK = 0x43; // "C"
const STATE = 0x53; // "S"
const DATA_KEY = 0x4b; // "K"
const NONCE_LEASE = 0x4e; // "N"
const SEP = 0x00;

function prefixed(tag: number, run: string, task: string, trailing: number): Buffer {
  const runLen = Buffer.byteLength(run);
  const taskLen = Buffer.byteLength(task);
  const buf = Buffer.allocUnsafe(1 + runLen + 1 + taskLen + trailing);
  buf[0] = tag;
  buf.write(run, 1, "latin1");
  buf[1 + runLen] = SEP;
  buf.write(task, 2 + runLen, "latin1");
  return buf;
}

export function chunkKey(run: string, task: string, offset: number): Buffer {
  const buf = prefixed(CHUNK, run, task, 9);
  const at = buf.length - 9;
  buf[at] = SEP;
  buf.writeUInt32BE(Math.floor(offset / 0x1_0000_0000), at + 1);
  buf.writeUInt32BE(offset >>> 0, at + 5);
  return buf;
}

/** Bounds of every chunk key of one task: [first, end). */
export function chunkRange(run: string, task: string): { gte: Buffer; lt: Buffer } {
  const gte = prefixed(CHUNK, run, task, 1);
  gte[gte.length - 1] = SEP;
  const lt = Buffer.from(gte);
  lt[lt.length - 1] = SEP + 1;
  return { gte, lt };
}

export function chunkOffset(key: Buffer): number {
  const at = key.length - 8;
  return key.readUInt32BE(at) * 0x1_0000_0000 + key.readUInt32BE(at + 4);
}

export function taskStateKey(run: string, task: string): Buffer {
  return prefixed(STATE, run, task, 0);
}

function runKey(tag: number, run: string, generation: number): Buffer {
  const runLen = Buffer.byteLength(run);
  const buf = Buffer.allocUnsafe(1 + runLen + 1 + 4);
  buf[0] = tag;
  buf.write(run, 1, "latin1");
  buf[1 + runLen] = SEP;
  buf.writeUInt32BE(generation, 2 + runLen);
  return buf;
}

/** A run's wrapped data key of one generation: `K run \0 generation(4 bytes)`. */
export function dataKeyKey(run: string, generation: number): Buffer {
  return runKey(DATA_KEY, run, generation);
}

/** How many chunks the data key of one generation may have sealed: `N run \0 generation`. */
export function nonceLeaseKey(run: string, generation: number): Buffer {
  return runKey(NONCE_LEASE, run, generation);
}

/** Every wrapped data key, or those of one run. */
export function dataKeyRange(run?: string): { gte: Buffer; lt: Buffer } {
  if (run === undefined) return { gte: Buffer.from([DATA_KEY]), lt: Buffer.from([DATA_KEY + 1]) };
  const gte = runKey(DATA_KEY, run, 0);
  const lt = Buffer.from(gte.subarray(0, gte.length - 4));
  lt[lt.length - 1] = SEP + 1;
  return { gte, lt };
}

/** Every nonce lease of one run. */
export function nonceLeaseRange(run: string): { gte: Buffer; lt: Buffer } {
  const range = dataKeyRange(run);
  range.gte[0] = NONCE_LEASE;
  range.lt[0] = NONCE_LEASE;
  return range;
}

/** The run and generation of a data key's key. */
export function parseDataKeyKey(key: Buffer): { run: string; generation: number } {
  return { run: key.toString("latin1", 1, key.length - 5), generation: key.readUInt32BE(key.length - 4) };
}

// The archive's ledger (src/archive/archive-ledger.ts) lives in the same store, so a
// task's drop and the record of what was verified before it cannot part ways.
const ARCHIVED_RUN = 0x41; // "A": a run's archive record
const ARCHIVE_SEGMENT = 0x42; // "B": a verified segment, keyed like chunks
const ARCHIVE_PENDING = 0x50; // "P": runs whose archive is not final yet

const tagged = (tag: number, run: string) => Buffer.concat([Buffer.from([tag]), Buffer.from(run, "latin1")]);

export const archivedRunKey = (run: string): Buffer => tagged(ARCHIVED_RUN, run);
export const archivePendingKey = (run: string): Buffer => tagged(ARCHIVE_PENDING, run);

/** Bounds of every pending-run key. */
export const archivePendingRange = { gte: Buffer.from([ARCHIVE_PENDING]), lt: Buffer.from([ARCHIVE_PENDING + 1]) };

export function archiveSegmentKey(run: string, task: string, offset: number): Buffer {
  const key = chunkKey(run, task, offset);
  key[0] = ARCHIVE_SEGMENT;
  return key;
}

/** Bounds of the segment keys of one task, or of every task of the run when `task` is undefined. */
export function archiveSegmentRange(run: string, task?: string): { gte: Buffer; lt: Buffer } {
  if (task !== undefined) {
    const range = chunkRange(run, task);
    range.gte[0] = ARCHIVE_SEGMENT;
    range.lt[0] = ARCHIVE_SEGMENT;
    return range;
  }
  const gte = prefixed(ARCHIVE_SEGMENT, run, "", 0).subarray(0, 2 + Buffer.byteLength(run));
  const lt = Buffer.from(gte);
  lt[lt.length - 1] = SEP + 1;
  return { gte, lt };
}
