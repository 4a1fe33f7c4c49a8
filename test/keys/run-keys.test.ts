import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, test } from "vitest";
import { ChunkThread } from "../../src/crypto/chunk-thread.js";
import { DataKeyCache } from "../../src/keys/data-key-cache.js";
import { LocalKeyProvider } from "../../src/keys/local-key-provider.js";
import { parseKeyring } from "../../src/keys/master-key-file.js";
import { RunKeys } from "../../src/keys/run-keys.js";
import { KvStore } from "../../src/store/kv-store.js";
import { dataKeyRange } from "../../src/store/log-keys.js";
import { LogStore } from "../../src/store/log-store.js";

let dir: string;
let kv: KvStore;
let sealThread: ChunkThread;
beforeEach(async () => {
  sealThread = new ChunkThread();
  dir = await mkdtemp(join(tmpdir(), "joblog-run-keys-"));
  kv = await KvStore.open(join(dir, "joblogs"), { compression: false });
});
afterEach(async () => {
  await sealThread.close();
  await kv.close();
  await rm(dir, { recursive: true, force: true });
});

const provider = () => LocalKeyProvider.open(join(dir, "master.key"), true);

async function storedGenerations(run: string): Promise<number> {
  let n = 0;
  for await (const _ of kv.entries(dataKeyRange(run))) n++;
  return n;
}

/** Seals `count` chunks for `run` the way the commit queue does, and writes them. */
async function sealChunks(store: LogStore, run: string, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++) {
    const key = await store.keys.prepareWrite(run);
    await kv.write(
      await store.sealChunks([{ key, run, task: "t", offset: i * 10, data: Buffer.from(`chunk ${String(i).padStart(3, "0")}\n`) }]),
      false,
    );
  }
}

test("a data key seals at most its budget of chunks, then the run moves to a new generation; every chunk still reads", async () => {
  const keys = new RunKeys(kv, await provider(), { cacheMaxKeys: 10, cacheMaxAgeMs: 60_000, maxChunksPerKey: 4, leaseChunks: 4 });
  const store = new LogStore(kv, keys, { algorithm: "brotli", level: 1 }, sealThread);
  await keys.createRunKey("r", "w");
  await sealChunks(store, "r", 0, 10);
  expect(await storedGenerations("r")).toBeGreaterThanOrEqual(3);

  // A leader started afresh (nothing cached) reads them all, across generations.
  const again = new LogStore(
    kv,
    new RunKeys(kv, await provider(), { cacheMaxKeys: 10, cacheMaxAgeMs: 60_000 }),
    { algorithm: "brotli", level: 1 },
    sealThread,
  );
  const slice = await again.read("r", "t", 0, 100, 1 << 20);
  expect(slice.data.toString()).toBe(Array.from({ length: 10 }, (_, i) => `chunk ${String(i).padStart(3, "0")}\n`).join(""));
});

test("after a restart a run's key counts its whole reservation as used, so a crash can only over-count", async () => {
  const options = { cacheMaxKeys: 10, cacheMaxAgeMs: 60_000, maxChunksPerKey: 8, leaseChunks: 4 };
  const first = new RunKeys(kv, await provider(), options);
  await first.createRunKey("r", "w");
  await sealChunks(new LogStore(kv, first, { algorithm: "none", level: 0 }, sealThread), "r", 0, 1);
  // Restarted: 4 reserved counts as 4 used; the next lease reaches the budget of 8 and the one after rolls.
  const second = new RunKeys(kv, await provider(), options);
  await sealChunks(new LogStore(kv, second, { algorithm: "none", level: 0 }, sealThread), "r", 1, 5);
  expect(await storedGenerations("r")).toBe(2);
});

test("an interrupted rotation leaves the previous master key usable; running it again finishes", async () => {
  const keys = new RunKeys(kv, await provider(), { cacheMaxKeys: 10, cacheMaxAgeMs: 60_000 });
  const store = new LogStore(kv, keys, { algorithm: "brotli", level: 1 }, sealThread);
  for (const run of ["a", "b", "c"]) {
    await keys.createRunKey(run, "w");
    await sealChunks(store, run, 0, 2);
  }
  const before = parseKeyring(await readFile(join(dir, "master.key"), "utf8"), "k");

  // Crash after the new key is in the file and one data key is re-wrapped.
  const crashing = await provider();
  await crashing.beginRotation();
  let seen = 0;
  for await (const [key, value] of kv.entries(dataKeyRange())) {
    if (seen++ > 0) break;
    const { decodeDataKeyRecord, encodeDataKeyRecord } = await import("../../src/keys/data-key-record.js");
    const record = decodeDataKeyRecord(value);
    const next = await crashing.rewrap(record, record.context);
    if (next) await kv.write([{ type: "put", key, value: encodeDataKeyRecord({ ...record, ...next }) }], true);
  }
  const middle = parseKeyring(await readFile(join(dir, "master.key"), "utf8"), "k");
  expect(middle.keys.size).toBe(2);
  expect(middle.keys.has(before.current)).toBe(true);

  const restarted = new RunKeys(kv, await provider(), { cacheMaxKeys: 10, cacheMaxAgeMs: 60_000 });
  const reader = new LogStore(kv, restarted, { algorithm: "brotli", level: 1 }, sealThread);
  for (const run of ["a", "b", "c"]) expect((await reader.read(run, "t", 0, 100, 1 << 20)).data.toString()).toBe("chunk 000\nchunk 001\n");
  // Running it again rotates to yet another key and drops both earlier ones.
  expect(await restarted.rotate()).toEqual({ rewrapped: 3, unchanged: 0 });
  const after = parseKeyring(await readFile(join(dir, "master.key"), "utf8"), "k");
  expect(after.keys.size).toBe(1);
  expect([before.current, middle.current]).not.toContain(after.current);
  const fresh = new LogStore(
    kv,
    new RunKeys(kv, await provider(), { cacheMaxKeys: 10, cacheMaxAgeMs: 60_000 }),
    { algorithm: "brotli", level: 1 },
    sealThread,
  );
  for (const run of ["a", "b", "c"]) expect((await fresh.read(run, "t", 0, 100, 1 << 20)).data.toString()).toBe("chunk 000\nchunk 001\n");
});

test("the data key cache is bounded in count (least recently used goes) and in age", () => {
  let now = 0;
  const cache = new DataKeyCache<string>(2, 1000, () => now);
  cache.set("a", "A");
  cache.set("b", "B");
  cache.get("a");
  cache.set("c", "C");
  expect([cache.get("a"), cache.get("b"), cache.get("c")]).toEqual(["A", undefined, "C"]);
  now = 999;
  expect(cache.get("a")).toBe("A");
  now = 1000;
  expect(cache.get("a")).toBeUndefined();
  expect(cache.size).toBe(1);
});
