import rocksdb from "@nxtedition/rocksdb";
import { DomainError, unavailable } from "../errors/domain-error.js";
import { type FreeSpaceFloor, freeSpaceOf } from "./free-space-floor.js";

/**
 * The narrow seam between joblog and its RocksDB binding: binary keys and values,
 * atomic batches, ordered range scans. Nothing else in joblog imports the binding.
 */

export type KvOp = { type: "put"; key: Buffer; value: Buffer } | { type: "del"; key: Buffer };

export interface KvRange {
  gt?: Buffer;
  gte?: Buffer;
  lt?: Buffer;
  lte?: Buffer;
  reverse?: boolean;
  limit?: number;
}

/** Every entry of a store as it was at one instant, read in key order. */
export interface KvSnapshot {
  /** The entries; ends the snapshot when done (or when the loop is left). */
  entries(pageSize?: number): AsyncIterable<[Buffer, Buffer]>;
  /** Ends the snapshot without reading it (a no-op once `entries` has finished). */
  close(): Promise<void>;
}

export interface KvStoreOptions {
  /**
   * RocksDB block compression. Off for stores whose values are already compressed
   * or encrypted: compressing ciphertext burns CPU for nothing (measured 3x slower writes).
   */
  compression: boolean;
  /** Told when writes start failing for an I/O error and when a reopen has cleared it. */
  warn?: (message: string, err?: unknown) => void;
  /**
   * RocksDB's memtable budget (64 MiB when absent): what the store may hold in its
   * WAL alone, which a reopen must be able to flush (see `memtableBudgetFor`).
   */
  memtableBudgetBytes?: number;
  /**
   * The room kept free on the store's filesystem: writes of new data (`newBytes`)
   * are refused below it, and a store whose writes failed for a full disk reopens
   * once it is free again.
   */
  floor?: FreeSpaceFloor;
}

export interface KvWriteOptions {
  /** Ops that put back what `ops` change; see `write`. */
  undo?: KvOp[];
  /**
   * Bytes of new data the write adds (log lines): refused while they would take the
   * filesystem below the floor. Writes without (metadata, bookkeeping that lets the
   * archive drop buffers) go on: they are small, and some of them are what frees space.
   */
  newBytes?: number;
}

/** The binding reports every open failure as "Database is not open"; the reason is in its cause. */
function openError(location: string, err: unknown): Error {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : err instanceof Error ? err.message : String(err);
  if (/lock/i.test(cause)) {
    return new Error(`cannot open ${location}: another process (a running leader?) is using this data directory`, { cause: err });
  }
  return new Error(`cannot open ${location}: ${cause}`, { cause: err });
}

type Iterator = ReturnType<InstanceType<typeof rocksdb.RocksLevel>["iterator"]>;

/** An iterator's entries, fetched `pageSize` at a time. */
async function* pages(it: Iterator, pageSize: number): AsyncGenerator<[Buffer, Buffer]> {
  for (;;) {
    const page = await it.nextv(pageSize);
    if (page.length === 0) return;
    yield* page;
  }
}

// Buffer encodings everywhere: the binding's default utf8 silently mangles binary values.
const BUFFERS = { keyEncoding: "buffer", valueEncoding: "buffer" } as const;

/**
 * After a write fails with an I/O error (a full disk), RocksDB keeps the error and
 * refuses every later write. Sometimes it recovers by itself once space returns (its
 * SstFileManager polls the free space every 5 s, flushes and resumes after a failed
 * flush), but never from a failed WAL append alone. So a faulted store retries a
 * small write at most every `RETRY_INTERVAL_MS`, which succeeds once RocksDB has
 * resumed; while it fails and the filesystem has had its floor free (without one,
 * `REOPEN_MIN_FREE_BYTES`) for `REOPEN_AFTER_MS`, the store closes and reopens the
 * database, which clears the error. The floor is above what a reopen needs (the
 * memtable budget follows it), so once it is free the reopen succeeds.
 */
const RETRY_INTERVAL_MS = 500;
const REOPEN_AFTER_MS = 1_000;
/** Without a floor: well above the 64 MiB memtable budget RocksDB waits for. */
const REOPEN_MIN_FREE_BYTES = 64 * 1024 * 1024;
const CLOSE_WARN_MS = 30_000;

/** Deleted by the retry write: a key nothing else uses, so the write changes nothing but proves the store writes. */
const PROBE_KEY = Buffer.from("\u0000joblog-kv-write-probe");

interface WriteFault {
  error: Error;
  /** Ops that put back what the failed writes may have left: one could be in the WAL, unacknowledged. */
  undo: KvOp[];
  lastTry: number;
  /** Since when the filesystem has had room, while writes still fail; undefined while it has none. */
  roomSince: number | undefined;
}

type RocksDb = InstanceType<typeof rocksdb.RocksLevel>;

function openOptionsOf(options: KvStoreOptions) {
  return {
    createIfMissing: true,
    compression: options.compression,
    infoLogLevel: "warn",
    // Level compaction with a 64 MiB memtable budget (16 MiB memtables) instead of RocksDB's
    // 64 MiB default memtable: logs stream through, and the leader's memory should not grow with them.
    compaction: "level",
    memtableMemoryBudget: options.memtableBudgetBytes ?? 64 * 1024 * 1024,
    ...BUFFERS,
  } as const;
}

/** An error of the storage itself (ENOSPC, EIO), as opposed to a misuse of the binding. */
function isIoError(err: unknown): err is Error {
  return (
    err instanceof Error &&
    (/IO error|No space left|ENOSPC|EIO/i.test(err.message) || (err as { code?: unknown }).code === "LEVEL_IO_ERROR")
  );
}

/**
 * A write refused because the store cannot write (full disk: RESOURCE_EXHAUSTED,
 * another I/O error: UNAVAILABLE). Both are retryable; nothing was acknowledged.
 */
export class StoreWriteError extends DomainError {
  override name = "StoreWriteError";
}

function diskFullError(location: string, detail?: string): StoreWriteError {
  return new StoreWriteError(
    "resource_exhausted",
    `the leader's disk is full (${location}${detail ? `: ${detail}` : ""}); nothing more is acknowledged until space returns, what was acknowledged is stored`,
  );
}

function writeFaultError(location: string, err: Error): StoreWriteError {
  if (/No space left|ENOSPC/i.test(err.message)) return diskFullError(location);
  return new StoreWriteError("unavailable", `the leader's store cannot write (${err.message}); nothing more is acknowledged until it can`);
}

export class KvStore {
  private fault: WriteFault | undefined;
  private recovering: Promise<void> | undefined;
  /** getMany calls the binding has not answered yet: a close must wait for them (see `closeDb`). */
  private readsInFlight = 0;
  private readsDrained: (() => void) | undefined;
  /** The close under way, if any: reads are refused meanwhile. */
  private closingDb: Promise<void> | undefined;

  private constructor(
    private db: RocksDb,
    readonly location: string,
    private readonly options: KvStoreOptions,
  ) {}

  static async open(location: string, options: KvStoreOptions): Promise<KvStore> {
    const db = await KvStore.openDb(location, options);
    return new KvStore(db, location, options);
  }

  private static async openDb(location: string, options: KvStoreOptions): Promise<RocksDb> {
    const openOptions = openOptionsOf(options);
    const db = new rocksdb.RocksLevel(location, openOptions);
    try {
      await db.open(openOptions);
    } catch (err) {
      throw openError(location, err);
    }
    return db;
  }

  /** A reopen after a write fault that could not open the database leaves it closed: reads say so, retryably. */
  private readable(): RocksDb {
    if (this.closingDb) {
      throw unavailable(
        `the leader's store (${this.location}) is closing${this.fault ? " to reopen after a write fault" : ""}; retry later`,
      );
    }
    if (this.fault && !this.isOpen) {
      throw unavailable(`the leader's store (${this.location}) is closed after a write fault and not reopened yet; retry later`);
    }
    return this.db;
  }

  async get(key: Buffer): Promise<Buffer | undefined> {
    const [value] = await this.getMany([key]);
    return value;
  }

  async getMany(keys: Buffer[]): Promise<Array<Buffer | undefined>> {
    if (keys.length === 0) return [];
    const db = this.readable();
    this.readsInFlight++;
    try {
      return await db.getMany(keys, BUFFERS);
    } finally {
      if (--this.readsInFlight === 0) this.readsDrained?.();
    }
  }

  /**
   * The binding's close, called while a getMany is in flight, defers the native close
   * until that read returns and then reports the database closed without ever closing
   * it: RocksDB keeps its LOCK, and every later open of the directory in this process
   * fails ("lock hold by current process"). So new reads are refused and the ones in
   * flight awaited first; iterators need nothing, as the binding closes them itself.
   */
  private closeDb(): Promise<void> {
    // One close at a time (a shutdown can come while a write fault's close is under way): they share it.
    this.closingDb ??= (async () => {
      try {
        while (this.readsInFlight > 0) {
          await new Promise<void>((resolve) => {
            this.readsDrained = resolve;
          });
        }
        this.readsDrained = undefined;
        await this.db.close();
      } finally {
        this.closingDb = undefined;
      }
    })();
    return this.closingDb;
  }

  /**
   * Applies every op or none. `sync` waits until the write-ahead log is on disk.
   * `undo` puts back what `ops` change (deletes of new keys, the previous values of
   * others): when the write fails for lack of space its outcome is unknown, as the
   * batch may be whole in the WAL and reappear when it is replayed; the undo is the
   * first write once the store writes again, so what callers cached as durable stays true.
   */
  async write(ops: KvOp[], sync: boolean, options: KvWriteOptions = {}): Promise<void> {
    if (ops.length === 0) return;
    const { undo = [], newBytes = 0 } = options;
    const floor = this.options.floor;
    if (newBytes > 0 && floor && !floor.tryAdmit(newBytes)) {
      const shortage = await floor.admit(newBytes);
      if (shortage !== undefined) throw diskFullError(this.location, shortage);
    }
    if (this.fault) await this.recover();
    try {
      await this.writeBatch(this.db, ops, sync);
    } catch (err) {
      throw this.failed(err, undo);
    }
  }

  private async writeBatch(db: RocksDb, ops: KvOp[], sync: boolean): Promise<void> {
    // A chained batch, because its write() clears the native WriteBatch. The array form
    // of batch() leaves each one to a GC finalizer that V8, unaware of the native bytes,
    // hardly runs: measured 500 MB written → 748 MB RSS, against 224 MB this way.
    const batch = db.batch();
    for (const op of ops) {
      if (op.type === "put") batch.put(op.key, op.value);
      else batch.del(op.key);
    }
    await batch.write({ sync });
  }

  /** Records an I/O failure (the store refuses writes until reopened) and returns the error to throw. */
  private failed(err: unknown, undo: KvOp[]): unknown {
    if (!isIoError(err)) return err;
    if (this.fault) this.fault.undo.push(...undo);
    else {
      this.fault = { error: err, undo: [...undo], lastTry: Date.now(), roomSince: undefined };
      this.options.warn?.(`${this.location}: writes fail, nothing is acknowledged until they succeed again`, err);
    }
    return writeFaultError(this.location, err);
  }

  /** One recovery attempt at a time; concurrent writers wait for it and share its outcome. */
  private recover(): Promise<void> {
    this.recovering ??= this.tryRecovery().finally(() => {
      this.recovering = undefined;
    });
    return this.recovering;
  }

  /**
   * Writes the undo (or, with none, a no-op delete): it succeeds once RocksDB has
   * resumed, and then nothing the failed batches may have left in the WAL stays.
   * Only an error that outlives free space for `REOPEN_AFTER_MS` gets a reopen.
   */
  private async tryRecovery(): Promise<void> {
    const fault = this.fault as WriteFault;
    const refuse = () => writeFaultError(this.location, fault.error);
    const now = Date.now();
    if (now - fault.lastTry < RETRY_INTERVAL_MS) throw refuse();
    fault.lastTry = now;
    const probe: KvOp[] = [...fault.undo, { type: "del", key: PROBE_KEY }];
    try {
      await this.writeBatch(this.db, probe, true);
      this.resumed("RocksDB resumed");
      return;
    } catch (err) {
      if (!isIoError(err) && this.isOpen) throw err;
      if (isIoError(err)) fault.error = err;
    }
    const free = await this.freeBytes();
    if (free !== undefined && free < this.reopenFreeBytes) {
      fault.roomSince = undefined;
      throw refuse();
    }
    fault.roomSince ??= now;
    if (now - fault.roomSince < REOPEN_AFTER_MS && this.isOpen) throw refuse();
    await this.closeAfterFault();
    let db: RocksDb;
    try {
      db = await KvStore.openDb(this.location, this.options);
    } catch (err) {
      // Reads fail too until a later write reopens it: rare, as space was checked first.
      fault.error = err instanceof Error ? err : new Error(String(err));
      throw refuse();
    }
    this.db = db;
    try {
      await this.writeBatch(db, probe, true);
    } catch (err) {
      if (isIoError(err)) fault.error = err;
      throw refuse();
    }
    this.resumed("reopened");
  }

  /** close() does close the native database, then reports the kept background error; a close that hangs is reported. */
  private async closeAfterFault(): Promise<void> {
    const slow = setTimeout(() => {
      this.options.warn?.(`${this.location}: closing the database after a write fault has taken ${CLOSE_WARN_MS / 1000} s and goes on`);
    }, CLOSE_WARN_MS);
    try {
      await this.closeDb().catch(() => undefined);
    } finally {
      clearTimeout(slow);
    }
  }

  private resumed(how: string): void {
    this.fault = undefined;
    this.options.warn?.(`${this.location}: writes resume after a write fault (${how})`);
  }

  /**
   * Deletes every key in [gte, lt) with one RocksDB DeleteRange: one tombstone however
   * many keys the range holds, where per-key deletes would write one each. Written to
   * the WAL without a sync: a delete lost to a power cut leaves data that is still valid.
   */
  async deleteRange(gte: Buffer, lt: Buffer): Promise<void> {
    if (this.fault) await this.recover();
    // Without `limit` the binding's clear() is exactly one DeleteRange.
    try {
      await this.db.clear({ gte, lt, ...BUFFERS });
    } catch (err) {
      throw this.failed(err, []);
    }
  }

  /** Entries of a key range in order, fetched `pageSize` at a time. */
  async *entries(range: KvRange, pageSize = 64): AsyncGenerator<[Buffer, Buffer]> {
    const it = this.readable().iterator({ ...range, ...BUFFERS });
    try {
      yield* pages(it, pageSize);
    } finally {
      await it.close();
    }
  }

  /**
   * A point-in-time view of the whole store. The binding has no checkpoint, backup
   * engine or snapshot API, but its iterator is created here, synchronously, with
   * RocksDB's implicit snapshot (NewIterator without ReadOptions.snapshot): writes
   * after this call are not seen, however long the reading takes.
   */
  snapshot(): KvSnapshot {
    const it = this.db.iterator(BUFFERS);
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      await it.close();
    };
    return {
      async *entries(pageSize = 256) {
        try {
          yield* pages(it, pageSize);
        } finally {
          await close();
        }
      },
      close,
    };
  }

  /** The first entry of a range, or undefined. */
  async first(range: KvRange): Promise<[Buffer, Buffer] | undefined> {
    return this.page(range, 1)[0];
  }

  /**
   * Up to `limit` entries of a range, read in one synchronous call on the event loop.
   * For short reads (a seek, the next chunks of a read): an iterator costs two or
   * three round trips through the thread pool, each slower on a loaded machine than
   * reading a few chunks from RocksDB's caches. Long scans use `entries`.
   */
  page(range: KvRange, limit: number): Array<[Buffer, Buffer]> {
    const { rows } = this.readable().querySync({ ...range, limit, ...BUFFERS });
    const entries: Array<[Buffer, Buffer]> = [];
    for (let i = 0; i + 1 < rows.length; i += 2) entries.push([rows[i] as Buffer, rows[i + 1] as Buffer]);
    return entries;
  }

  /** The free space of the store's filesystem: the floor's reading when there is one, so one source says it. */
  private async freeBytes(): Promise<number | undefined> {
    const floor = this.options.floor;
    try {
      if (!floor) return (await freeSpaceOf(this.location)).free;
      await floor.refresh();
      return floor.freeBytes;
    } catch {
      return undefined;
    }
  }

  /** Free bytes a reopen after a write fault waits for. */
  private get reopenFreeBytes(): number {
    const floor = this.options.floor?.minFreeBytes ?? 0;
    if (floor === 0) return REOPEN_MIN_FREE_BYTES;
    return Math.max(floor, 2 * (this.options.memtableBudgetBytes ?? 0));
  }

  /** Why writes fail now, when they do: the last I/O error, until a write succeeds again. */
  get writeFault(): string | undefined {
    return this.fault?.error.message;
  }

  get isOpen(): boolean {
    return this.db.status === "open";
  }

  /** Approximate bytes of the store: live SST files plus memtables (RocksDB's own accounting, no disk walk). */
  approximateBytes(): number {
    if (this.db.status !== "open") return 0;
    return Number(this.db.getProperty("rocksdb.live-sst-files-size")) + Number(this.db.getProperty("rocksdb.size-all-mem-tables"));
  }

  async close(): Promise<void> {
    if (this.db.status === "open") await this.closeDb();
  }
}
