import { expect, test } from "vitest";
import { TaskRegistry, taskKey } from "../../src/ingest/task-registry.js";
import type { LogStore } from "../../src/store/log-store.js";
import type { TaskLogState } from "../../src/store/task-log-state.js";

const STATE: TaskLogState = { seq: 3, length: 120, records: 3, startedAt: 1 };

test("a failed read of a task's state is not remembered: the next load reads the store again", async () => {
  let reads = 0;
  // The store fails its first read, as it does while it reopens after a full disk.
  const store = {
    async loadState(): Promise<TaskLogState | undefined> {
      reads++;
      if (reads === 1) throw new Error("the store is reopening");
      return STATE;
    },
  } as unknown as LogStore;
  const registry = new TaskRegistry(store);
  const key = taskKey("r", "t");

  await expect(registry.load(key)).rejects.toThrow("the store is reopening");
  await expect(registry.load(key)).resolves.toEqual(STATE);
  // Once loaded it is cached.
  await expect(registry.load(key)).resolves.toEqual(STATE);
  expect(reads).toBe(2);
});
