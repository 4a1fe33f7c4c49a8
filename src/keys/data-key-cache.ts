/**
 * The only place plaintext data keys live: memory, bounded in count and in age.
 * Least recently used entries go first when full; an entry older than the age
 * limit (counted from when it was unwrapped) is dropped on access, so a key is
 * fetched from the provider again at least that often.
 */
export class DataKeyCache<V> {
  private readonly entries = new Map<string, { value: V; loadedAt: number }>();

  constructor(
    private readonly maxEntries: number,
    private readonly maxAgeMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get(id: string): V | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    if (this.now() - entry.loadedAt >= this.maxAgeMs) {
      this.entries.delete(id);
      return undefined;
    }
    // Re-insert: Map order is the LRU order.
    this.entries.delete(id);
    this.entries.set(id, entry);
    return entry.value;
  }

  set(id: string, value: V): void {
    this.entries.delete(id);
    this.entries.set(id, { value, loadedAt: this.now() });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  delete(id: string): void {
    this.entries.delete(id);
  }

  /** Drops every entry whose id starts with `prefix`. */
  deletePrefix(prefix: string): void {
    for (const id of [...this.entries.keys()]) if (id.startsWith(prefix)) this.entries.delete(id);
  }

  get size(): number {
    return this.entries.size;
  }
}
