import { z } from "zod";

/**
 * The on-disk format of a joblog backup (version 1). A backup is a set of objects
 * under one directory or S3 prefix:
 *
 * - `joblogs-NNNNNN.jlkv`, `meta-NNNNNN.jlkv`: the entries of the log store and the
 *   metadata store in key order, as records `keyLength(u32 BE) valueLength(u32 BE)
 *   key value`, values exactly as stored (chunks stay encrypted). A store is split
 *   into parts of bounded size, so uploads and checksums stream.
 * - `manifest.json`: written last, so a backup without it is incomplete. It names
 *   every part with its size, record count and SHA-256.
 */

export const BACKUP_FORMAT = "joblog-backup";
export const BACKUP_FORMAT_VERSION = 1;
export const MANIFEST_NAME = "manifest.json";
/** The two RocksDB stores of a data directory, by their directory names. */
export const BACKUP_STORES = ["joblogs", "meta"] as const;
export type BackupStoreName = (typeof BACKUP_STORES)[number];

/** Bytes of one record's header. */
export const RECORD_HEADER_BYTES = 8;
/** Bounds checked before a record is buffered: keys are short; values are chunks of at most a few MiB. */
export const MAX_KEY_BYTES = 64 * 1024;
export const MAX_VALUE_BYTES = 64 * 1024 * 1024;
/** Default size at which a store's data is cut into a new part. */
export const DEFAULT_PART_BYTES = 256 * 1024 * 1024;

export const partName = (store: BackupStoreName, index: number): string => `${store}-${String(index).padStart(6, "0")}.jlkv`;

const fileSchema = z.object({
  name: z.string().regex(/^(joblogs|meta)-\d{6}\.jlkv$/),
  store: z.enum(BACKUP_STORES),
  bytes: z.number().int().nonnegative(),
  records: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

export const manifestSchema = z.object({
  format: z.literal(BACKUP_FORMAT),
  version: z.literal(BACKUP_FORMAT_VERSION),
  created_at: z.string(),
  leader_version: z.string(),
  mode: z.enum(["online", "offline"]),
  /** Master keys (local key ids or KMS key ARNs) that wrapped the backup's data keys: what a restore needs. */
  key_ids: z.array(z.string()),
  files: z.array(fileSchema),
  totals: z.object({ files: z.number().int(), records: z.number().int(), bytes: z.number().int() }),
});

export type BackupManifest = z.infer<typeof manifestSchema>;
export type BackupFile = z.infer<typeof fileSchema>;

/** A backup that cannot be used: missing, truncated or altered. The message names the object. */
export class BackupCorruptError extends Error {
  override name = "BackupCorruptError";
}

/** Parses and checks a manifest; totals must agree with its files. */
export function parseManifest(bytes: Buffer, where: string): BackupManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new BackupCorruptError(`${where} is not valid JSON`);
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new BackupCorruptError(
      `${where} is not a joblog backup manifest of version ${BACKUP_FORMAT_VERSION}: ${issue?.path.join(".") || "(root)"}: ${issue?.message}`,
    );
  }
  const m = parsed.data;
  const sum = (f: (file: BackupFile) => number) => m.files.reduce((n, file) => n + f(file), 0);
  if (m.totals.files !== m.files.length || m.totals.records !== sum((f) => f.records) || m.totals.bytes !== sum((f) => f.bytes)) {
    throw new BackupCorruptError(`${where}: totals do not match the files it lists`);
  }
  for (const store of BACKUP_STORES) {
    if (!m.files.some((f) => f.store === store)) throw new BackupCorruptError(`${where} lists no file of the ${store} store`);
  }
  return m;
}

/** One record's bytes: header, key, value. */
export function encodeRecord(key: Buffer, value: Buffer): Buffer[] {
  const header = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
  header.writeUInt32BE(key.length, 0);
  header.writeUInt32BE(value.length, 4);
  return [header, key, value];
}

/**
 * Splits a byte stream into records. Lengths are checked against the bounds before
 * anything is buffered, so a damaged header cannot make it allocate gigabytes.
 */
export class RecordDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly where: string) {}

  /** Records completed by `bytes`. */
  *push(bytes: Buffer): Generator<[Buffer, Buffer]> {
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    for (;;) {
      if (this.pendingBytes < RECORD_HEADER_BYTES) return;
      const head = this.peek(RECORD_HEADER_BYTES);
      const keyLength = head.readUInt32BE(0);
      const valueLength = head.readUInt32BE(4);
      if (keyLength === 0 || keyLength > MAX_KEY_BYTES || valueLength > MAX_VALUE_BYTES) {
        throw new BackupCorruptError(`${this.where} holds a record header with key ${keyLength} and value ${valueLength} bytes: corrupt`);
      }
      const total = RECORD_HEADER_BYTES + keyLength + valueLength;
      if (this.pendingBytes < total) return;
      const record = this.take(total);
      yield [record.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + keyLength), record.subarray(RECORD_HEADER_BYTES + keyLength)];
    }
  }

  /** Throws when the stream ended inside a record. */
  end(): void {
    if (this.pendingBytes > 0)
      throw new BackupCorruptError(`${this.where} ends inside a record (${this.pendingBytes} bytes left over): truncated`);
  }

  private peek(bytes: number): Buffer {
    if ((this.pending[0] as Buffer).length < bytes) this.pending = [Buffer.concat(this.pending, this.pendingBytes)];
    return this.pending[0] as Buffer;
  }

  private take(bytes: number): Buffer {
    const joined = this.peek(bytes);
    const record = joined.subarray(0, bytes);
    const rest = joined.subarray(bytes);
    this.pending = rest.length > 0 ? [rest, ...this.pending.slice(1)] : this.pending.slice(1);
    this.pendingBytes -= bytes;
    return record;
  }
}
