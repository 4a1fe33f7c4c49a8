/**
 * What the archive needs from a place to keep objects: whole puts, streamed puts,
 * verification by size and checksum, ranged reads with explicit bounds, listing
 * and deletion. `s3-backend.ts` and `local-backend.ts` implement it.
 */
export interface ArchiveBackend {
  /** Where objects go, for messages (no credentials). */
  readonly description: string;
  /** Stores `body` under `key`, replacing what was there. */
  put(key: string, body: Buffer): Promise<ObjectDigest>;
  /** Stores the concatenation of `pieces` under `key` without holding it all in memory. */
  putStream(key: string, pieces: AsyncIterable<Buffer>): Promise<ObjectDigest>;
  /** Throws ArchiveVerifyError unless the stored object has the digest's size and checksum. */
  verify(key: string, digest: ObjectDigest): Promise<void>;
  /** Bytes [start, end) of an object; undefined when the object does not exist. */
  getRange(key: string, start: number, end: number): Promise<Buffer | undefined>;
  /** A whole object; undefined when it does not exist. */
  get(key: string): Promise<Buffer | undefined>;
  /** Keys under a prefix. */
  list(prefix: string): AsyncIterable<string>;
  /** Throws unless the store answers and the bucket or directory exists: one cheap request, no retries (readiness). */
  probe(signal: AbortSignal): Promise<void>;
  /** Deletes objects; keys that do not exist are not an error. */
  delete(keys: readonly string[]): Promise<void>;
  close(): void;
}

/**
 * What was written: size, MD5 of the whole, and (when the upload was split into
 * parts) each part's MD5 — S3's ETag of a multipart object is derived from those.
 */
export interface ObjectDigest {
  size: number;
  md5: string;
  partMd5s?: string[];
}

/** The stored object is missing or differs from what was written. */
export class ArchiveVerifyError extends Error {
  override name = "ArchiveVerifyError";
}

/** Stops an operation that cannot succeed by retrying (a bad key), as opposed to an outage. */
export class ArchiveKeyError extends Error {
  override name = "ArchiveKeyError";
}
