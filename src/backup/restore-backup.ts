import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import type { EncryptionConfig } from "../config/config-schema.js";
import { type DataKeyRecord, decodeDataKeyRecord } from "../keys/data-key-record.js";
import { openKeyProvider } from "../keys/open-run-keys.js";
import { type KvOp, KvStore } from "../store/kv-store.js";
import { dataKeyRange } from "../store/log-keys.js";
import { BACKUP_STORES, type BackupManifest } from "./backup-format.js";
import type { BackupProgress, ProgressListener } from "./backup-progress.js";
import type { BackupTarget } from "./backup-target.js";
import { readBackupFile, verifyBackup } from "./read-backup.js";

export interface RestoreOptions {
  /** The data directory to restore into. */
  dataDir: string;
  /** The key provider the restored leader will use: it must unwrap every data key of the backup. */
  encryption: EncryptionConfig;
  /** Replace the stores of a data directory that has them. */
  force?: boolean;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

/** The restore was refused before anything was written; the message says why. */
export class RestoreRefusedError extends Error {
  override name = "RestoreRefusedError";
}

/** Entries per RocksDB write batch while restoring, and bytes that end a batch early. */
const BATCH_ENTRIES = 4096;
const BATCH_BYTES = 8 * 1024 * 1024;

/**
 * Restores a backup into a data directory. Everything is checked before anything is
 * written: every file against the manifest, the directory (empty but for the master
 * key file, or `force`), and that the configured key provider unwraps every wrapped
 * data key of the backup. The stores are then built beside the data directory's own
 * and moved into place last, so a failure leaves the directory as it was.
 */
export async function restoreBackup(target: BackupTarget, options: RestoreOptions): Promise<BackupManifest> {
  const dataDir = resolve(options.dataDir);
  const dataKeys: DataKeyRecord[] = [];
  const keyRange = dataKeyRange();
  const manifest = await verifyBackup(target, {
    ...(options.onProgress && { onProgress: options.onProgress }),
    ...(options.signal && { signal: options.signal }),
    onRecord: (file, key, value) => {
      if (file.store === "joblogs" && key.compare(keyRange.gte) >= 0 && key.compare(keyRange.lt) < 0)
        dataKeys.push(decodeDataKeyRecord(value));
    },
  });
  const existing = await storesToReplace(dataDir, options);
  await checkKeys(dataKeys, manifest, options.encryption, dataDir);
  await ensureUnused(dataDir, existing);

  const staging = join(dataDir, `.restore-${randomBytes(6).toString("hex")}`);
  await mkdir(staging, { recursive: true });
  try {
    const progress: BackupProgress = { phase: "restore", files: 0, bytes: 0, records: 0, totalBytes: manifest.totals.bytes };
    for (const store of BACKUP_STORES) {
      // The same RocksDB options the leader opens each store with.
      const kv = await KvStore.open(join(staging, store), { compression: store === "meta" });
      try {
        let ops: KvOp[] = [];
        let bytes = 0;
        const count = (n: number) => {
          progress.bytes += n;
          options.onProgress?.({ ...progress });
        };
        for (const file of manifest.files.filter((f) => f.store === store)) {
          // Read again and checked again: the source could have changed since it was verified.
          for await (const [key, value] of readBackupFile(target, file, count)) {
            // A full batch is written when the next entry comes, so the last one is never empty.
            if (ops.length >= BATCH_ENTRIES || bytes >= BATCH_BYTES) {
              options.signal?.throwIfAborted();
              await kv.write(ops, false);
              ops = [];
              bytes = 0;
            }
            // The binding copies keys and values into its write batch.
            ops.push({ type: "put", key, value });
            bytes += key.length + value.length;
            progress.records++;
          }
          progress.files++;
        }
        // The last batch synced: every write before it reaches the disk with it.
        await kv.write(ops, true);
      } finally {
        await kv.close();
      }
    }
    // Into place: the old stores aside first (with --force), then the new ones, then the old ones go.
    for (const store of existing) await rename(join(dataDir, store), join(staging, `replaced-${store}`));
    for (const store of BACKUP_STORES) await rename(join(staging, store), join(dataDir, store));
    options.onProgress?.({ ...progress, phase: "done" });
    return manifest;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * The data directory must hold nothing but a master key file, unless `force`.
 * Returns the stores it has (which `force` replaces).
 */
async function storesToReplace(dataDir: string, options: RestoreOptions): Promise<string[]> {
  const keyFile = options.encryption.master_key_file ? resolve(options.encryption.master_key_file) : join(dataDir, "master.key");
  const entries = await readdir(dataDir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return [];
    throw err;
  });
  const others = entries.filter((name) => !(dirname(keyFile) === dataDir && name === basename(keyFile)));
  if (others.length === 0) return [];
  if (!options.force) {
    throw new RestoreRefusedError(
      `the data directory ${dataDir} is not empty (it holds ${others.slice(0, 5).join(", ")}${others.length > 5 ? ", …" : ""}); restore into an empty directory, or pass --force to replace its stores`,
    );
  }
  return others.filter((name) => (BACKUP_STORES as readonly string[]).includes(name));
}

/** Stores about to be replaced must not be held by a leader: opening takes RocksDB's lock, which a running one holds. */
async function ensureUnused(dataDir: string, stores: string[]): Promise<void> {
  for (const store of stores) {
    const kv = await KvStore.open(join(dataDir, store), { compression: store === "meta" });
    await kv.close();
  }
}

/** Every wrapped data key of the backup must unwrap with the configured provider. */
async function checkKeys(records: DataKeyRecord[], manifest: BackupManifest, encryption: EncryptionConfig, dataDir: string): Promise<void> {
  if (records.length === 0) return;
  const needs = `the backup's data keys were wrapped by master key ${manifest.key_ids.join(", ")}`;
  if (encryption.provider === "local") {
    const file = encryption.master_key_file ? resolve(encryption.master_key_file) : join(dataDir, "master.key");
    if (!existsSync(file)) {
      throw new RestoreRefusedError(
        `cannot restore: the master key file ${file} does not exist; ${needs}. A backup never holds the master key: put the key file that holds them there, or set encryption.master_key_file`,
      );
    }
  }
  let opened: Awaited<ReturnType<typeof openKeyProvider>>;
  try {
    opened = await openKeyProvider(encryption, dataDir, async () => false);
  } catch (err) {
    throw new RestoreRefusedError(`cannot restore: ${(err as Error).message}; ${needs}`);
  }
  try {
    for (const record of records) {
      try {
        await opened.provider.unwrap(record, record.context);
      } catch (err) {
        throw new RestoreRefusedError(
          `cannot restore with ${opened.provider.description}: ${(err as Error).message}; ${needs}. Configure the key provider that wrapped them (encryption.master_key_file or encryption.aws.key_id)`,
        );
      }
    }
  } finally {
    opened.close();
  }
}
