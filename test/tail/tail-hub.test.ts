import { expect, test } from "vitest";
import { taskKey } from "../../src/ingest/task-registry.js";
import { TailHub } from "../../src/tail/tail-hub.js";

test("the cache of recent bytes holds copies of its pieces, not the larger buffers they are views into", () => {
  const hub = new TailHub(1024 * 1024);
  const key = taskKey("run-1", "build");
  const unsubscribe = hub.subscribe(key);
  // A piece of a larger buffer, as a commit group's JSONL split into chunks (or a small batch in Node's 8 KiB pool).
  const batch = Buffer.alloc(64 * 1024, 0x61);
  batch.write('{"line":"a"}\n', 100, "latin1");
  const piece = batch.subarray(100, 113);
  hub.publish([{ key, offset: 0, data: piece }], new Map());
  const cached = hub.cached(key, 0, 1024) as Buffer;
  expect(cached.toString("latin1")).toBe('{"line":"a"}\n');
  expect(cached.buffer.byteLength).toBe(cached.byteLength);
  // A piece that owns its buffer is kept as it is.
  const own = Buffer.allocUnsafeSlow(13);
  own.write('{"line":"b"}\n', "latin1");
  hub.publish([{ key, offset: 13, data: own }], new Map());
  expect((hub.cached(key, 13, 1024) as Buffer).buffer).toBe(own.buffer);
  unsubscribe();
});

test("over the total budget the tasks written least recently lose their oldest bytes first; a task nobody tails gives its bytes back", () => {
  const hub = new TailHub(1024, 3 * 100);
  const keys = ["a", "b", "c"].map((t) => taskKey("run-1", t));
  const unsubscribes = keys.map((key) => hub.subscribe(key));
  const piece = (char: string) => Buffer.from(`${char.repeat(99)}\n`, "latin1");
  const [a, b, c] = keys as [ReturnType<typeof taskKey>, ReturnType<typeof taskKey>, ReturnType<typeof taskKey>];
  hub.publish([{ key: a, offset: 0, data: piece("a") }], new Map());
  hub.publish([{ key: b, offset: 0, data: piece("b") }], new Map());
  hub.publish([{ key: a, offset: 100, data: piece("a") }], new Map());
  expect(hub.cachedBytes).toBe(300);
  // Over the total: b wrote least recently, so its piece goes; a keeps both of its own.
  hub.publish([{ key: c, offset: 0, data: piece("c") }], new Map());
  expect(hub.cachedBytes).toBe(300);
  expect(hub.cached(b, 0, 1024)).toBeUndefined();
  expect(hub.cached(a, 0, 1024)?.length).toBe(200);
  expect(hub.cached(c, 0, 1024)?.length).toBe(100);
  // Then a is the least recent: its oldest piece goes first, its newest stays.
  hub.publish([{ key: c, offset: 100, data: piece("c") }], new Map());
  expect(hub.cached(a, 0, 1024)).toBeUndefined();
  expect(hub.cached(a, 100, 1024)?.length).toBe(100);
  expect(hub.cachedBytes).toBe(300);
  unsubscribes[0]?.();
  expect(hub.cachedBytes).toBe(200);
  for (const unsubscribe of unsubscribes) unsubscribe();
  expect(hub.cachedBytes).toBe(0);
});
