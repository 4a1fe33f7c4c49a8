import type { LogStore } from "../store/log-store.js";
import type { TaskLogState } from "../store/task-log-state.js";

export type TaskKey = string;

export function taskKey(run: string, task: string): TaskKey {
  return `${run}\0${task}`;
}

export function splitTaskKey(key: TaskKey): { run: string; task: string } {
  const at = key.indexOf("\0");
  return { run: key.slice(0, at), task: key.slice(at + 1) };
}

interface Entry {
  state: TaskLogState;
  usedAt: number;
}

/**
 * The durable state of task logs, cached in memory. The commit queue builds each
 * group of writes from these states and replaces them only after the write
 * succeeded, so what is here is always what is on disk. Completed tasks that are
 * not used for a while are evicted and reloaded on demand; running ones stay.
 */
export class TaskRegistry {
  private readonly entries = new Map<TaskKey, Entry>();
  private readonly loading = new Map<TaskKey, Promise<TaskLogState | undefined>>();

  constructor(
    private readonly store: LogStore,
    private readonly maxIdleCompleted = 10_000,
  ) {}

  /** The durable state, loading it from the store when not cached; undefined when the task has no log. */
  async load(key: TaskKey): Promise<TaskLogState | undefined> {
    const cached = this.entries.get(key);
    if (cached) {
      cached.usedAt = Date.now();
      return cached.state;
    }
    let pending = this.loading.get(key);
    if (!pending) {
      const { run, task } = splitTaskKey(key);
      pending = this.store
        .loadState(run, task)
        // Also after a failed read (the store reopening after a full disk): the next load reads again.
        .finally(() => this.loading.delete(key))
        .then((state) => {
          // A commit may have created the entry while the store read was in flight; it is newer.
          const current = this.entries.get(key);
          if (current) return current.state;
          if (state) this.entries.set(key, { state, usedAt: Date.now() });
          return state;
        });
      this.loading.set(key, pending);
    }
    return pending;
  }

  /** The cached durable state; callers load() first. */
  peek(key: TaskKey): TaskLogState | undefined {
    return this.entries.get(key)?.state;
  }

  /** Forgets a task whose log was deleted from the store. */
  forget(key: TaskKey): void {
    this.entries.delete(key);
  }

  /** Records a state that is now durable. */
  commit(key: TaskKey, state: TaskLogState): void {
    const entry = this.entries.get(key);
    if (entry) {
      entry.state = state;
      entry.usedAt = Date.now();
    } else {
      this.entries.set(key, { state, usedAt: Date.now() });
      this.evictIfFull();
    }
  }

  private evictIfFull(): void {
    if (this.entries.size <= this.maxIdleCompleted) return;
    const idleSince = Date.now() - 60_000;
    for (const [key, entry] of this.entries) {
      if (entry.state.completion && entry.usedAt < idleSince) this.entries.delete(key);
      if (this.entries.size <= this.maxIdleCompleted / 2) return;
    }
  }
}
