import { createHash } from "node:crypto";
import { decodeDataKeyRecord } from "../keys/data-key-record.js";
import type { KvSnapshot } from "../store/kv-store.js";
import { dataKeyRange } from "../store/log-keys.js";
import {
  BACKUP_FORMAT,
  BACKUP_FORMAT_VERSION,
  type BackupFile,
  type BackupManifest,
  type BackupStoreName,
  DEFAULT_PART_BYTES,
  encodeRecord,
  MANIFEST_NAME,
  partName,
} from "./backup-format.js";
import type { BackupProgress, ProgressListener } from "./backup-progress.js";
import type { BackupTarget } from "./backup-target.js";
import { joblogVersion } from "./joblog-version.js";

export interface WriteBackupOptions {
  mode: BackupManifest["mode"];
  /** A store's data is cut into a new file after this many bytes. */
  partBytes?: number;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

/** Records are gathered into pieces of about this size before they go to the target. */
const PIECE_BYTES = 1024 * 1024;

/** The target already holds something: a backup never overwrites. */
export class BackupTargetNotEmptyError extends Error {
  override name = "BackupTargetNotEmptyError";
}

/**
 * Writes the two store snapshots to `target` as parts plus a manifest, and returns
 * the manifest. The manifest goes last: a backup that failed half way has none, and
 * what it did write is deleted.
 */
export async function writeBackup(
  target: BackupTarget,
  snapshots: Record<BackupStoreName, KvSnapshot>,
  options: WriteBackupOptions,
): Promise<BackupManifest> {
  await ensureEmpty(target);
  const partBytes = options.partBytes ?? DEFAULT_PART_BYTES;
  const progress: BackupProgress = { phase: "copy", files: 0, bytes: 0, records: 0, totalBytes: 0 };
  const files: BackupFile[] = [];
  const keyIds = new Set<string>();
  const dataKeys = dataKeyRange();
  let doneRecords = 0;
  try {
    for (const store of ["joblogs", "meta"] as const) {
      const entries = snapshots[store].entries()[Symbol.asyncIterator]();
      let next = await entries.next();
      for (let index = 1; index === 1 || !next.done; index++) {
        options.signal?.throwIfAborted();
        const name = partName(store, index);
        const sha = createHash("sha256");
        let bytes = 0;
        let records = 0;
        // One part: records until it reaches partBytes (always whole records).
        const pieces = async function* (): AsyncGenerator<Buffer> {
          let piece: Buffer[] = [];
          let pieceBytes = 0;
          while (!next.done && bytes < partBytes) {
            const [key, value] = next.value;
            if (store === "joblogs" && key.compare(dataKeys.gte) >= 0 && key.compare(dataKeys.lt) < 0) {
              keyIds.add(decodeDataKeyRecord(value).keyId);
            }
            for (const b of encodeRecord(key, value)) {
              piece.push(b);
              pieceBytes += b.length;
              bytes += b.length;
            }
            records++;
            if (pieceBytes >= PIECE_BYTES) {
              options.signal?.throwIfAborted();
              const out = Buffer.concat(piece, pieceBytes);
              piece = [];
              pieceBytes = 0;
              sha.update(out);
              progress.bytes += out.length;
              progress.records = doneRecords + records;
              options.onProgress?.({ ...progress });
              yield out;
            }
            next = await entries.next();
          }
          const out = Buffer.concat(piece, pieceBytes);
          sha.update(out);
          progress.bytes += out.length;
          yield out;
        };
        await target.backend.putStream(target.prefix + name, pieces());
        files.push({ name, store, bytes, records, sha256: sha.digest("hex") });
        progress.files++;
        doneRecords += records;
        progress.records = doneRecords;
        options.onProgress?.({ ...progress });
      }
      await entries.return?.();
    }
    const manifest: BackupManifest = {
      format: BACKUP_FORMAT,
      version: BACKUP_FORMAT_VERSION,
      created_at: new Date().toISOString(),
      leader_version: joblogVersion(),
      mode: options.mode,
      key_ids: [...keyIds].sort(),
      files,
      totals: {
        files: files.length,
        records: files.reduce((n, f) => n + f.records, 0),
        bytes: files.reduce((n, f) => n + f.bytes, 0),
      },
    };
    options.signal?.throwIfAborted();
    await target.backend.put(target.prefix + MANIFEST_NAME, Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
    options.onProgress?.({ ...progress, phase: "done", totalBytes: progress.bytes });
    return manifest;
  } catch (err) {
    // Best effort: a half-written backup has no manifest anyway, so verify and restore refuse it.
    await target.backend.delete(files.map((f) => target.prefix + f.name)).catch(() => {});
    throw err;
  }
}

async function ensureEmpty(target: BackupTarget): Promise<void> {
  for await (const key of target.backend.list(target.prefix)) {
    throw new BackupTargetNotEmptyError(
      `the backup target ${target.description} is not empty (it holds ${key.slice(target.prefix.length)}); back up into an empty directory or prefix`,
    );
  }
}
