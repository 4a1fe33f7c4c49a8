import { ownBytes } from "./own-bytes.js";

interface Entry {
  /** The stored value the plaintext came from: a hit must match it byte for byte. */
  sealed: Buffer;
  plaintext: Promise<Buffer>;
  bytes: number;
}

/**
 * Plaintexts of recently opened chunks, shared by every reader: ten tails of one
 * log, or the pages of one sequential reader, open each chunk once instead of
 * once per reader and page. Entries are keyed by store key but only served when
 * the stored value is byte-identical to the one opened, so a chunk deleted and
 * written again (a deleted run's id reused, a dropped buffer) can never be
 * answered from an older plaintext, and nothing needs invalidating. Bounded by
 * bytes (plaintext plus sealed), least recently used first out.
 */
export class OpenedChunks {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  /** The plaintext of `sealed` stored at `storeKey`, from memory or from `open()`. */
  open(storeKey: Buffer, sealed: Buffer, open: () => Promise<Buffer>): Promise<Buffer> {
    if (this.maxBytes === 0) return open();
    const id = storeKey.toString("latin1");
    const hit = this.entries.get(id);
    if (hit) {
      this.remove(id, hit);
      if (hit.sealed.equals(sealed)) {
        this.insert(id, hit);
        return hit.plaintext;
      }
    }
    // Values can be views into one large page buffer: keep a copy, not the page.
    const own = ownBytes(sealed);
    const entry: Entry = { sealed: own, plaintext: open(), bytes: own.length };
    this.insert(id, entry);
    entry.plaintext.then(
      (plaintext) => {
        if (this.entries.get(id) !== entry) return;
        entry.bytes += plaintext.length;
        this.bytes += plaintext.length;
        this.evict();
      },
      // A chunk that fails to open is never remembered: every reader must see the failure.
      () => {
        if (this.entries.get(id) === entry) this.remove(id, entry);
      },
    );
    return entry.plaintext;
  }

  /** False when sized 0: nothing opened is kept, so opening ahead would be wasted. */
  get enabled(): boolean {
    return this.maxBytes > 0;
  }

  /** Forgets every chunk whose store key starts with `prefix`: a deleted log's plaintext must not linger in memory. */
  forgetPrefix(prefix: Buffer): void {
    const start = prefix.toString("latin1");
    for (const [id, entry] of [...this.entries]) if (id.startsWith(start)) this.remove(id, entry);
  }

  /** Bytes held, plaintext and sealed. */
  get size(): number {
    return this.bytes;
  }

  private insert(id: string, entry: Entry): void {
    this.entries.set(id, entry);
    this.bytes += entry.bytes;
    this.evict();
  }

  private remove(id: string, entry: Entry): void {
    this.entries.delete(id);
    this.bytes -= entry.bytes;
  }

  private evict(): void {
    for (const [id, entry] of this.entries) {
      if (this.bytes <= this.maxBytes || this.entries.size <= 1) return;
      this.remove(id, entry);
    }
  }
}
