import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, test } from "vitest";
import { KvStore } from "../../src/store/kv-store.js";

let dir: string | undefined;

afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

const key = (n: number) => Buffer.from(`key-${n}`);

// The binding, closed with a getMany in flight, reported "closed" but kept RocksDB's LOCK: a leader that
// closed its store to reopen it after a full disk could then never open it again (CI, scenario 6).
test("a close while reads are in flight waits for them and releases the directory, so it opens again", async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-kv-"));
  const location = join(dir, "store");
  const store = await KvStore.open(location, { compression: false });
  await store.write(
    Array.from({ length: 200 }, (_, i) => ({ type: "put" as const, key: key(i), value: Buffer.alloc(4096, i) })),
    false,
  );

  const reads = Array.from({ length: 20 }, (_, i) => store.getMany([key(i), key(i + 100), key(1000)]));
  await store.close();
  // Every read begun before the close is answered in full.
  const answers = await Promise.all(reads);
  answers.forEach((values, i) => {
    expect(values[0]?.[0]).toBe(i);
    expect(values[1]?.[0]).toBe(i + 100);
    expect(values[2]).toBeUndefined();
  });

  const again = await KvStore.open(location, { compression: false });
  try {
    expect((await again.get(key(7)))?.length).toBe(4096);
  } finally {
    await again.close();
  }
});

test("a read asked for while the store closes is refused as retryable, naming the store", async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-kv-"));
  const location = join(dir, "store");
  const store = await KvStore.open(location, { compression: false });
  await store.write([{ type: "put", key: key(1), value: Buffer.from("v") }], false);
  const inFlight = store.get(key(1));
  const closed = store.close();
  await expect(store.get(key(1))).rejects.toMatchObject({ message: expect.stringContaining(`${location}) is closing`) });
  await closed;
  expect((await inFlight)?.toString()).toBe("v");
});

test("two closes at once (a shutdown during a fault's close) share one close and both finish", async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-kv-"));
  const location = join(dir, "store");
  const store = await KvStore.open(location, { compression: false });
  await store.write([{ type: "put", key: key(1), value: Buffer.from("v") }], false);
  const reads = [store.get(key(1)), store.get(key(1))];
  await Promise.all([store.close(), store.close()]);
  expect((await Promise.all(reads)).map((v) => v?.toString())).toEqual(["v", "v"]);
  const again = await KvStore.open(location, { compression: false });
  await again.close();
});
