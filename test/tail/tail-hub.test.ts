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
