import type { CommittedAppend } from "../ingest/commit-queue.js";
import type { TaskKey } from "../ingest/task-registry.js";
import { ownBytes } from "../store/own-bytes.js";
import type { TaskLogState } from "../store/task-log-state.js";

interface Topic {
  subscribers: number;
  /** Wakes every subscriber waiting for this task to change. */
  waiters: Set<() => void>;
  /** Recently committed pieces, contiguous and in offset order, at most `cacheBytes` in all. */
  recent: CommittedAppend[];
  recentBytes: number;
}

/**
 * Fan-out of committed records to tails. Nothing is pushed into per-subscriber
 * queues: a subscriber that is behind reads what it needs, from this hub's small
 * cache of recent bytes when they are still there and from the store otherwise.
 * So a slow subscriber holds no memory, cannot stall ingest or other
 * subscribers, and catches up without losing a line.
 */
export class TailHub {
  private readonly topics = new Map<TaskKey, Topic>();
  private closed = false;
  private subscribers = 0;

  /** Bytes cached for all tasks. */
  private totalBytes = 0;

  /**
   * `cacheBytes` per tailed task and `maxTotalBytes` for all of them: without a
   * total, 1,000 tailed tasks could each hold their whole share. Over the total,
   * the tasks that published least recently lose their oldest bytes first; their
   * subscribers, caught up at their last commit, rarely need them.
   */
  constructor(
    private readonly cacheBytes: number,
    private readonly maxTotalBytes = Number.POSITIVE_INFINITY,
  ) {}

  /** Bytes the cache holds for all tasks. */
  get cachedBytes(): number {
    return this.totalBytes;
  }

  /** Subscribers of every task, for the metrics. */
  get subscriberCount(): number {
    return this.subscribers;
  }

  /** Registers interest in a task; call the returned function when done. */
  subscribe(key: TaskKey): () => void {
    let topic = this.topics.get(key);
    if (!topic) {
      topic = { subscribers: 0, waiters: new Set(), recent: [], recentBytes: 0 };
      this.topics.set(key, topic);
    }
    topic.subscribers++;
    this.subscribers++;
    const t = topic;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.subscribers--;
      t.subscribers--;
      if (t.subscribers === 0) {
        this.topics.delete(key);
        this.totalBytes -= t.recentBytes;
      }
    };
  }

  /** Called by the commit queue after each durable group. */
  publish(appends: readonly CommittedAppend[], states: ReadonlyMap<TaskKey, TaskLogState>): void {
    for (const append of appends) {
      const topic = this.topics.get(append.key);
      if (!topic || this.cacheBytes === 0) continue;
      // Counted by its bytes, so it holds no more than those (measured with 1,000 tailed tasks of
      // small batches: about 250 MB of buffers held by a cache that counted 40 MB).
      const data = ownBytes(append.data);
      topic.recent.push(data === append.data ? append : { ...append, data });
      topic.recentBytes += data.length;
      this.totalBytes += data.length;
      while (topic.recentBytes > this.cacheBytes && topic.recent.length > 1) this.dropOldest(topic);
      // The map's order is the order tasks last published in, which is what the total evicts by.
      this.topics.delete(append.key);
      this.topics.set(append.key, topic);
    }
    if (this.totalBytes > this.maxTotalBytes) this.evictOverTotal();
    for (const key of states.keys()) this.wake(key);
  }

  private dropOldest(topic: Topic): void {
    const dropped = topic.recent.shift() as CommittedAppend;
    topic.recentBytes -= dropped.data.length;
    this.totalBytes -= dropped.data.length;
  }

  private evictOverTotal(): void {
    for (const topic of this.topics.values()) {
      while (topic.recent.length > 0 && this.totalBytes > this.maxTotalBytes) this.dropOldest(topic);
      if (this.totalBytes <= this.maxTotalBytes) return;
    }
  }

  /** Whole records at `offset` from the cache, up to about `maxBytes`; undefined when not cached. */
  cached(key: TaskKey, offset: number, maxBytes: number): Buffer | undefined {
    const recent = this.topics.get(key)?.recent;
    if (!recent || recent.length === 0) return undefined;
    const first = recent[0] as CommittedAppend;
    if (offset < first.offset) return undefined;
    // Pieces start at record boundaries, so only an offset at a piece start is a safe hit.
    const parts: Buffer[] = [];
    let total = 0;
    let expected = offset;
    for (const piece of recent) {
      if (piece.offset + piece.data.length <= expected) continue;
      if (piece.offset !== expected) return parts.length ? Buffer.concat(parts, total) : undefined;
      if (total > 0 && total + piece.data.length > maxBytes) break;
      parts.push(piece.data);
      total += piece.data.length;
      expected += piece.data.length;
    }
    if (parts.length === 0) return undefined;
    return parts.length === 1 ? parts[0] : Buffer.concat(parts, total);
  }

  /** Resolves on the next commit touching `key`, on `signal`'s abort, or on close. */
  changed(key: TaskKey, signal: AbortSignal): Promise<void> {
    const topic = this.topics.get(key);
    if (!topic || this.closed || signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        topic.waiters.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      topic.waiters.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  /** Wakes every waiting subscriber for good: used on shutdown. */
  close(): void {
    this.closed = true;
    for (const key of this.topics.keys()) this.wake(key);
  }

  private wake(key: TaskKey): void {
    const topic = this.topics.get(key);
    if (!topic) return;
    for (const waiter of [...topic.waiters]) waiter();
  }
}
