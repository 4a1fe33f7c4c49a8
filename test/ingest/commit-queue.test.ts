import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, test } from "vitest";
import { ChunkThread } from "../../src/crypto/chunk-thread.js";
import { CommitQueue, type CommittedAppend } from "../../src/ingest/commit-queue.js";
import { appendBatch, createLog } from "../../src/ingest/log-jobs.js";
import { encodeLines } from "../../src/ingest/record-encoder.js";
import { TaskRegistry, taskKey } from "../../src/ingest/task-registry.js";
import { KvStore } from "../../src/store/kv-store.js";
import { LogStore } from "../../src/store/log-store.js";
import { localRunKeys } from "../helpers/local-run-keys.js";

let dir: string;
let kv: KvStore;
let store: LogStore;
let sealThread: ChunkThread;
let registry: TaskRegistry;
let committed: CommittedAppend[];
let queue: CommitQueue;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-commit-queue-"));
  kv = await KvStore.open(join(dir, "joblogs"), { compression: false });
  sealThread = new ChunkThread();
  const keys = await localRunKeys(kv, dir);
  await keys.createRunKey("r", "default");
  store = new LogStore(kv, keys, { algorithm: "brotli", level: 1 }, sealThread);
  registry = new TaskRegistry(store);
  committed = [];
  queue = new CommitQueue(kv, store, registry, { sync: false, chunkBytes: 64 * 1024, onCommitted: (a) => committed.push(...a) });
});

afterEach(async () => {
  await sealThread.close();
  await kv.close();
  await rm(dir, { recursive: true, force: true });
});

const lines = (...text: string[]) =>
  encodeLines(
    "t",
    text.map((t) => ({ text: Buffer.from(t), stream: "stdout" as const, tsMs: 0 })),
    1024,
  );

test("a job that throws in a group is rolled back alone; the jobs around it commit", async () => {
  const a = taskKey("r", "a");
  const b = taskKey("r", "b");
  await queue.run([a, b], (ctx) => {
    createLog(ctx, a, 1);
    createLog(ctx, b, 1);
  });
  // Three jobs queued in one turn land in one group.
  const first = queue.run([a], (ctx) => appendBatch(ctx, a, 1, lines("a1", "a2")));
  const refused = queue.run([a, b], (ctx) => {
    appendBatch(ctx, b, 1, lines("b1")); // changes b...
    appendBatch(ctx, a, 9, lines("gap")); // ...then is refused: b's change must go too
  });
  const third = queue.run([b], (ctx) => appendBatch(ctx, b, 1, lines("b1 again")));
  expect(await first).toMatchObject({ durableSeq: 2 });
  await expect(refused).rejects.toThrow(/expects 3/);
  expect(await third).toMatchObject({ durableSeq: 1 });

  const readAll = async (task: string) => {
    const state = await store.loadState("r", task);
    return (await store.read("r", task, 0, state?.length ?? 0, 1 << 20)).data.toString();
  };
  expect(await readAll("a")).toBe(lines("a1", "a2").jsonl.toString());
  expect(await readAll("b")).toBe(lines("b1 again").jsonl.toString());
  expect(committed.map((c) => c.data.toString()).join("")).toBe(lines("a1", "a2").jsonl.toString() + lines("b1 again").jsonl.toString());
  // The durable state on disk agrees with what the registry serves.
  expect(await store.loadState("r", "b")).toEqual(registry.peek(b));
});

test("a resend at or below the high-water mark is acknowledged and not stored again", async () => {
  const a = taskKey("r", "a");
  await queue.run([a], (ctx) => createLog(ctx, a, 1));
  await queue.run([a], (ctx) => appendBatch(ctx, a, 1, lines("1", "2", "3")));
  // Overlaps: 2 and 3 were stored, 4 is new.
  expect(await queue.run([a], (ctx) => appendBatch(ctx, a, 2, lines("2", "3", "4")))).toMatchObject({ durableSeq: 4 });
  const state = await store.loadState("r", "a");
  expect(state?.records).toBe(4);
  expect((await store.read("r", "a", 0, state?.length ?? 0, 1 << 20)).data.toString()).toBe(lines("1", "2", "3", "4").jsonl.toString());
});
