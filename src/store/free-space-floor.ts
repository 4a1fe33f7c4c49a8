import { statfs } from "node:fs/promises";

/** Free and total bytes of the filesystem holding a path, as an unprivileged writer sees them. */
export interface FreeSpace {
  free: number;
  total: number;
}

export async function freeSpaceOf(path: string): Promise<FreeSpace> {
  const fs = await statfs(path);
  return { free: fs.bavail * fs.bsize, total: fs.blocks * fs.bsize };
}

const MIB = 1024 * 1024;

/** The smallest floor that still leaves RocksDB the room it needs to reopen (see `memtableBudgetFor`). */
export const MIN_FLOOR_BYTES = 4 * MIB;
const AUTO_FLOOR_SHARE = 0.1;
const AUTO_FLOOR_MAX = 256 * MIB;
const MEMTABLE_BUDGET_MAX = 64 * MIB;
const MEMTABLE_BUDGET_MIN = MIB;

/** `storage.min_free_bytes` when not set: a tenth of the filesystem, between 4 and 256 MiB. */
export function autoFloorBytes(totalBytes: number): number {
  return Math.round(Math.min(AUTO_FLOOR_MAX, Math.max(MIN_FLOOR_BYTES, totalBytes * AUTO_FLOOR_SHARE)));
}

/**
 * RocksDB's memtable budget per store for a floor. With level compaction the
 * binding keeps up to 6 memtables of budget/4 each, so a store holds at most
 * 1.5 x budget that is only in its WAL; reopening replays and flushes it, which
 * needs that much free space. Two stores (logs, metadata) at floor/4 each need at
 * most 3/4 of the floor: a leader stopped at its floor always reopens.
 * Without a floor, RocksDB's 64 MiB (the budget before the floor existed).
 */
export function memtableBudgetFor(floorBytes: number): number {
  if (floorBytes === 0) return MEMTABLE_BUDGET_MAX;
  return Math.max(MEMTABLE_BUDGET_MIN, Math.min(MEMTABLE_BUDGET_MAX, Math.floor(floorBytes / 4)));
}

export function describeBytes(bytes: number): string {
  if (bytes >= 1024 * MIB) return `${(bytes / (1024 * MIB)).toFixed(1)} GiB`;
  if (bytes >= MIB) return `${(bytes / MIB).toFixed(1)} MiB`;
  return `${Math.round(bytes / 1024)} KiB`;
}

export interface FreeSpaceFloorOptions {
  /** Bytes the filesystem must keep free; 0 turns the floor off (readings still go on); absent: `autoFloorBytes`. */
  minFreeBytes?: number | undefined;
  /** How often the free space is read while nothing asks: another process can fill the disk too. */
  pollMs?: number;
  /** While below the floor, a write re-reads the free space at most this often. */
  retryMs?: number;
  /** Where readings come from; the filesystem by default (tests pass their own). */
  read?: (path: string) => Promise<FreeSpace>;
  /** Told once when a reading goes below the floor and once when one is back above it. */
  warn?: (message: string) => void;
}

/**
 * The room a leader keeps on its data directory's filesystem. New log bytes are
 * refused while the free space, less what was admitted since the last reading,
 * would go below the floor: the leader stops before RocksDB meets ENOSPC, so what
 * it acknowledged is in a WAL it can always replay, and a restart always opens.
 * Readings come from a poll (another process may take the space) and, near the
 * floor, from the write that asks; a reading is one statfs through the thread pool.
 */
export class FreeSpaceFloor {
  private last: FreeSpace;
  private lastAt: number;
  /** Bytes admitted since the last reading: not yet visible in it. */
  private admitted = 0;
  private reading: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;
  /** Whether the last reading was below the floor, to tell the operator once per crossing. */
  private wasBelow: boolean;

  private constructor(
    readonly path: string,
    first: FreeSpace,
    private readonly options: Required<Omit<FreeSpaceFloorOptions, "warn">> &
      Pick<FreeSpaceFloorOptions, "warn"> & { minFreeBytes: number },
  ) {
    this.last = first;
    this.lastAt = Date.now();
    this.wasBelow = this.below;
    this.timer = setInterval(() => void this.refresh().catch(() => undefined), options.pollMs);
    this.timer.unref();
  }

  /** Reads the free space of `path`'s filesystem once, then keeps watching it until `close()`. */
  static async open(path: string, options: FreeSpaceFloorOptions): Promise<FreeSpaceFloor> {
    const read = options.read ?? freeSpaceOf;
    const first = await read(path);
    const minFreeBytes = options.minFreeBytes ?? autoFloorBytes(first.total);
    return new FreeSpaceFloor(path, first, { pollMs: 200, retryMs: 100, read, ...options, minFreeBytes });
  }

  get minFreeBytes(): number {
    return this.options.minFreeBytes;
  }

  /** The latest reading, less what was admitted since. */
  get freeBytes(): number {
    return Math.max(0, this.last.free - this.admitted);
  }

  /** Whether the last reading is under the floor (what readiness reports). */
  get below(): boolean {
    return this.freeBytes < this.options.minFreeBytes;
  }

  /**
   * Admits `bytes` of new data, or returns why not: a sentence naming the free
   * space and the floor. Near the floor it reads the free space again first.
   */
  async admit(bytes: number): Promise<string | undefined> {
    if (this.tryAdmit(bytes)) return undefined;
    if (Date.now() - this.lastAt >= this.options.retryMs) await this.refresh().catch(() => undefined);
    return this.tryAdmit(bytes) ? undefined : this.shortage();
  }

  /** `where`: the shortage and what the leader does about it, for logs and readiness. */
  refusal(where = this.path): string {
    return `${where}: ${this.shortage()}; new log lines are refused until space returns`;
  }

  /** "3.2 MiB free, below storage.min_free_bytes (6.4 MiB)". */
  shortage(): string {
    return `${describeBytes(this.freeBytes)} free on its filesystem, below storage.min_free_bytes (${describeBytes(this.options.minFreeBytes)})`;
  }

  /** Admits `bytes` when the last reading has room for them, without reading again: the path of every group commit. */
  tryAdmit(bytes: number): boolean {
    if (this.options.minFreeBytes === 0 || this.last.free - this.admitted - bytes >= this.options.minFreeBytes) {
      this.admitted += bytes;
      return true;
    }
    return false;
  }

  /** A new reading; concurrent callers share one. */
  refresh(): Promise<void> {
    this.reading ??= (async () => {
      try {
        const next = await this.options.read(this.path);
        this.last = next;
        this.lastAt = Date.now();
        this.admitted = 0;
        if (this.below !== this.wasBelow) {
          this.wasBelow = this.below;
          this.options.warn?.(
            this.below
              ? this.refusal()
              : `${this.path}: ${describeBytes(this.freeBytes)} free again, above storage.min_free_bytes; new log lines are taken again`,
          );
        }
      } finally {
        this.reading = undefined;
      }
    })();
    return this.reading;
  }

  close(): void {
    clearInterval(this.timer);
  }
}
