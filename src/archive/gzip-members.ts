import { promisify } from "node:util";
import { gunzip as gunzipCb, gzip as gzipCb } from "node:zlib";

const gzip = promisify(gzipCb);
const gunzip = promisify(gunzipCb);

/** Plain bytes of a task's log in one gzip member: a ranged read fetches a member or two, never the object. */
export const MEMBER_BYTES = 256 * 1024;

/**
 * Where the gzip members of one piece of a task log lie: member i holds log bytes
 * [plain[i], plain[i+1]) (the last up to `plainEnd`) at object bytes
 * [gz[i], gz[i+1]) (the last up to `gzEnd`). Members start at record boundaries.
 */
export interface MemberTable {
  plain: number[];
  gz: number[];
  plainEnd: number;
  gzEnd: number;
}

/** Compresses record-aligned JSONL as one gzip member, off the main thread. */
export function gzipMember(jsonl: Buffer, level: number): Promise<Buffer> {
  return gzip(jsonl, { level });
}

/** Decompresses one or more whole gzip members (Node reads concatenated members as one stream). */
export function gunzipMembers(bytes: Buffer): Promise<Buffer> {
  return gunzip(bytes);
}

/** The same table with its object positions moved by `by` (the piece was placed at `by` in a larger object). */
export function shiftTable(table: MemberTable, by: number): MemberTable {
  return { plain: table.plain, gz: table.gz.map((g) => g + by), plainEnd: table.plainEnd, gzEnd: table.gzEnd + by };
}

/** Appends `next` (which continues where `table` ends) to `table`. */
export function joinTables(table: MemberTable, next: MemberTable): MemberTable {
  return { plain: [...table.plain, ...next.plain], gz: [...table.gz, ...next.gz], plainEnd: next.plainEnd, gzEnd: next.gzEnd };
}

/**
 * The members to fetch for a read of `maxBytes` at `offset`: from the member
 * holding `offset` until `maxBytes` past it are covered. Returns the log offset the
 * first member starts at and the object byte range [gzStart, gzEnd).
 */
export function membersFor(table: MemberTable, offset: number, maxBytes: number): { plainStart: number; gzStart: number; gzEnd: number } {
  let lo = 0;
  let hi = table.plain.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((table.plain[mid] as number) <= offset) lo = mid;
    else hi = mid - 1;
  }
  let last = lo;
  const want = offset + maxBytes;
  while (last + 1 < table.plain.length && (table.plain[last + 1] as number) < want) last++;
  const gzEnd = last + 1 < table.gz.length ? (table.gz[last + 1] as number) : table.gzEnd;
  return { plainStart: table.plain[lo] as number, gzStart: table.gz[lo] as number, gzEnd };
}
