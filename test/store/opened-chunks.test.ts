import { expect, test } from "vitest";
import { OpenedChunks } from "../../src/store/opened-chunks.js";

const key = (n: number) => Buffer.from(`chunk-${n}`);

test("a chunk is opened once while it stays cached, and only for the same stored bytes", async () => {
  const cache = new OpenedChunks(1024 * 1024);
  let opens = 0;
  const open = (text: string) => async () => {
    opens++;
    return Buffer.from(text);
  };
  const sealed = Buffer.from("sealed-a");
  const [a, b] = await Promise.all([cache.open(key(1), sealed, open("plain a")), cache.open(key(1), Buffer.from(sealed), open("other"))]);
  expect(a.toString()).toBe("plain a");
  expect(b.toString()).toBe("plain a");
  expect(opens).toBe(1);
  // Same key, other stored bytes (the chunk was deleted and written again): opened afresh.
  expect((await cache.open(key(1), Buffer.from("sealed-b"), open("plain b"))).toString()).toBe("plain b");
  expect(opens).toBe(2);
  expect(cache.size).toBe("sealed-b".length + "plain b".length);
});

test("a failed open is not remembered, and the cache stays within its bytes, least recently used out first", async () => {
  const cache = new OpenedChunks(100);
  await expect(cache.open(key(0), Buffer.from("s"), async () => Promise.reject(new Error("bad chunk")))).rejects.toThrow("bad chunk");
  expect(cache.size).toBe(0);
  for (let i = 1; i <= 5; i++) await cache.open(key(i), Buffer.alloc(10, i), async () => Buffer.alloc(20, i));
  expect(cache.size).toBeLessThanOrEqual(100);
  let reopened = 0;
  const count = async () => {
    reopened++;
    return Buffer.alloc(20);
  };
  await cache.open(key(5), Buffer.alloc(10, 5), count);
  expect(reopened).toBe(0);
  await cache.open(key(1), Buffer.alloc(10, 1), count);
  expect(reopened).toBe(1);
});

test("size 0 keeps nothing", async () => {
  const cache = new OpenedChunks(0);
  let opens = 0;
  for (let i = 0; i < 2; i++)
    await cache.open(key(1), Buffer.from("s"), async () => {
      opens++;
      return Buffer.from("p");
    });
  expect(opens).toBe(2);
  expect(cache.enabled).toBe(false);
});

test("forgetPrefix drops the plaintexts of a deleted log and keeps the others", async () => {
  const cache = new OpenedChunks(1024 * 1024);
  const opened = (name: string) => cache.open(Buffer.from(name), Buffer.from(`sealed ${name}`), async () => Buffer.from(`plain ${name}`));
  await Promise.all([opened("Crun-1\0a"), opened("Crun-1\0b"), opened("Crun-10\0a")]);
  cache.forgetPrefix(Buffer.from("Crun-1\0"));
  expect(cache.size).toBe("sealed Crun-10\0a".length + "plain Crun-10\0a".length);
});
