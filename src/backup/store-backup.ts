import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { WriteGate } from "../runs/write-gate.js";
import { type KvSnapshot, KvStore } from "../store/kv-store.js";
import type { BackupManifest, BackupStoreName } from "./backup-format.js";
import type { ProgressListener } from "./backup-progress.js";
import type { BackupTarget } from "./backup-target.js";
import { writeBackup } from "./write-backup.js";

export interface BackupRunOptions {
  partBytes?: number;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

/** What an online backup needs from a running leader. */
export interface LiveStores {
  logKv: KvStore;
  metaKv: KvStore;
  /** The run directory's gate around changes that write both stores. */
  writes: WriteGate;
}

/**
 * Backs up a running leader's stores. RocksDB's checkpoints and backup engine are not
 * exposed by the binding, so the cut is two iterators, each reading its store's
 * implicit snapshot: they are created together while the write gate holds back every
 * change that spans both stores (a run or task being created, a run being completed),
 * so the two snapshots agree. Pushed lines commit to the log store alone, atomically
 * with their high-water marks, and go on meanwhile; the gate is held only while the
 * two iterators are created.
 */
export async function backupLiveStores(stores: LiveStores, target: BackupTarget, options: BackupRunOptions = {}): Promise<BackupManifest> {
  options.onProgress?.({ phase: "snapshot", files: 0, bytes: 0, records: 0, totalBytes: 0 });
  const snapshots = await stores.writes.exclusive(() => ({ joblogs: stores.logKv.snapshot(), meta: stores.metaKv.snapshot() }));
  return backupSnapshots(snapshots, target, "online", options);
}

/** Backs up the stores of a data directory whose leader is stopped (RocksDB's lock refuses a running one). */
export async function backupDataDir(dataDir: string, target: BackupTarget, options: BackupRunOptions = {}): Promise<BackupManifest> {
  const dir = resolve(dataDir);
  const opened: KvStore[] = [];
  try {
    for (const store of ["joblogs", "meta"] as const) opened.push(await openExisting(join(dir, store), store));
    const [logKv, metaKv] = opened as [KvStore, KvStore];
    return await backupSnapshots({ joblogs: logKv.snapshot(), meta: metaKv.snapshot() }, target, "offline", options);
  } finally {
    await Promise.allSettled(opened.map((kv) => kv.close()));
  }
}

async function backupSnapshots(
  snapshots: Record<BackupStoreName, KvSnapshot>,
  target: BackupTarget,
  mode: BackupManifest["mode"],
  options: BackupRunOptions,
): Promise<BackupManifest> {
  try {
    return await writeBackup(target, snapshots, { mode, ...options });
  } finally {
    await Promise.allSettled([snapshots.joblogs.close(), snapshots.meta.close()]);
  }
}

async function openExisting(location: string, store: BackupStoreName): Promise<KvStore> {
  if (!existsSync(join(location, "CURRENT"))) {
    throw new Error(`${location} is not a joblog store (no RocksDB CURRENT file): is --data the leader's data directory?`);
  }
  try {
    return await KvStore.open(location, { compression: store === "meta" });
  } catch (err) {
    const message = (err as Error).message;
    if (/another process/.test(message)) throw new Error(`${message}; stop the leader first, or back up online with --leader`);
    throw err;
  }
}
