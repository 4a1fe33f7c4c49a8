import { createHash } from "node:crypto";
import { BackupCorruptError, type BackupFile, type BackupManifest, MANIFEST_NAME, parseManifest, RecordDecoder } from "./backup-format.js";
import type { BackupProgress, ProgressListener } from "./backup-progress.js";
import type { BackupTarget } from "./backup-target.js";

/** Files are read in ranged requests of this size, so no file is ever held whole. */
const READ_BYTES = 8 * 1024 * 1024;

/** The backup's manifest, checked; a missing one means the backup is incomplete. */
export async function readManifest(target: BackupTarget): Promise<BackupManifest> {
  const bytes = await target.backend.get(target.prefix + MANIFEST_NAME);
  const where = `${target.description}${target.description.endsWith("/") ? "" : "/"}${MANIFEST_NAME}`;
  if (bytes === undefined) throw new BackupCorruptError(`${where} is missing: not a joblog backup, or one that did not finish`);
  return parseManifest(bytes, where);
}

/**
 * The records of one backup file, in order. Size, record count and SHA-256 are
 * checked against the manifest as it reads; a mismatch throws BackupCorruptError
 * naming the file, after the last record was yielded — so a caller that must not
 * act on a bad file reads it through once first (`verifyBackup`).
 */
export async function* readBackupFile(
  target: BackupTarget,
  file: BackupFile,
  onBytes?: (bytes: number) => void,
): AsyncGenerator<[Buffer, Buffer]> {
  const where = `${file.name} in ${target.description}`;
  const decoder = new RecordDecoder(where);
  const sha = createHash("sha256");
  let offset = 0;
  let records = 0;
  // Ranges up to the size the manifest gives, then one byte past it, so a longer file is caught too.
  for (let guard = 0; guard <= file.bytes / READ_BYTES + 1; guard++) {
    const start = offset;
    const end = start < file.bytes ? Math.min(start + READ_BYTES, file.bytes) : start + 1;
    const piece = await rangeOrEnd(target, file.name, start, end);
    if (piece === undefined) throw new BackupCorruptError(`${where} is missing`);
    if (piece.length === 0) break;
    offset += piece.length;
    if (offset > file.bytes) throw new BackupCorruptError(`${where} is longer than the ${file.bytes} bytes the manifest gives it`);
    sha.update(piece);
    onBytes?.(piece.length);
    for (const record of decoder.push(piece)) {
      records++;
      yield record;
    }
    // A short read: the file ends here.
    if (piece.length < end - start) break;
  }
  if (offset < file.bytes) throw new BackupCorruptError(`${where} holds ${offset} bytes, the manifest says ${file.bytes}: truncated`);
  decoder.end();
  const digest = sha.digest("hex");
  if (digest !== file.sha256)
    throw new BackupCorruptError(`${where} has SHA-256 ${digest}, the manifest says ${file.sha256}: altered or damaged`);
  if (records !== file.records) throw new BackupCorruptError(`${where} holds ${records} records, the manifest says ${file.records}`);
}

export interface VerifyOptions {
  onProgress?: ProgressListener;
  /** Sees every record of every file (restore collects the wrapped data keys this way). */
  onRecord?: (file: BackupFile, key: Buffer, value: Buffer) => void;
  signal?: AbortSignal;
}

/** Reads every file of the backup through, checking each against the manifest; returns the manifest. */
export async function verifyBackup(target: BackupTarget, options: VerifyOptions = {}): Promise<BackupManifest> {
  const manifest = await readManifest(target);
  const progress: BackupProgress = { phase: "verify", files: 0, bytes: 0, records: 0, totalBytes: manifest.totals.bytes };
  for (const file of manifest.files) {
    options.signal?.throwIfAborted();
    const count = (bytes: number) => {
      progress.bytes += bytes;
      options.onProgress?.({ ...progress });
    };
    for await (const [key, value] of readBackupFile(target, file, count)) {
      progress.records++;
      options.onRecord?.(file, key, value);
    }
    progress.files++;
    options.onProgress?.({ ...progress });
  }
  return manifest;
}

/** A range of an object; empty when it starts at or past the end (S3 answers that with 416 InvalidRange). */
async function rangeOrEnd(target: BackupTarget, name: string, start: number, end: number): Promise<Buffer | undefined> {
  try {
    return await target.backend.getRange(target.prefix + name, start, end);
  } catch (err) {
    const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
    if (e.name === "InvalidRange" || e.$metadata?.httpStatusCode === 416) return Buffer.alloc(0);
    throw err;
  }
}
