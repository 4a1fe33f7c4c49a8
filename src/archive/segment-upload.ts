import type { LogStore } from "../store/log-store.js";
import type { ArchiveBackend } from "./archive-backend.js";
import { segmentKey } from "./archive-key.js";
import type { Segment } from "./archive-ledger.js";
import { gzipMember, MEMBER_BYTES } from "./gzip-members.js";

/** Plain bytes of a task put in one segment: a backlog becomes several, so memory stays bounded. */
export const SEGMENT_MAX_BYTES = 32 * 1024 * 1024;

export interface SegmentSource {
  store: LogStore;
  backend: ArchiveBackend;
  gzipLevel: number;
}

/**
 * Uploads log bytes [from, end) of a task — at most SEGMENT_MAX_BYTES of them — as
 * one segment of gzip members, and verifies it (size and checksum) before
 * returning its ledger entry. Cost: the new bytes only, read from the store once.
 */
export async function uploadSegment(
  src: SegmentSource,
  base: string,
  run: string,
  task: string,
  from: number,
  end: number,
): Promise<Segment> {
  // Reads run to `end` and stop after SEGMENT_MAX_BYTES: cutting at a byte count could split a record.
  const stop = from + SEGMENT_MAX_BYTES;
  const members: Buffer[] = [];
  const plain: number[] = [];
  const gz: number[] = [];
  let offset = from;
  let size = 0;
  while (offset < end && offset < stop) {
    // One read of about MEMBER_BYTES of whole records is one member: members start and end at records.
    const slice = await src.store.read(run, task, offset, end, MEMBER_BYTES);
    if (slice.data.length === 0 || slice.offset !== offset) {
      throw new Error(`task ${task} of run ${run}: the store has no records at offset ${offset} (up to ${end})`);
    }
    const member = await gzipMember(slice.data, src.gzipLevel);
    plain.push(offset);
    gz.push(size);
    members.push(member);
    size += member.length;
    offset += slice.data.length;
  }
  const key = segmentKey(base, task, from, offset);
  const body = Buffer.concat(members, size);
  const digest = await src.backend.put(key, body);
  await src.backend.verify(key, digest);
  return { task, key, size, md5: digest.md5, members: { plain, gz, plainEnd: offset, gzEnd: size } };
}
