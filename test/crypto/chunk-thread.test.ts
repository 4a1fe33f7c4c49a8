import { expect, test } from "vitest";
import { ChunkIntegrityError, type ChunkKeySource, openChunk } from "../../src/crypto/chunk-cipher.js";
import { ChunkThread } from "../../src/crypto/chunk-thread.js";
import { chunkKey } from "../../src/store/log-keys.js";

const dek = Buffer.alloc(32, 3);
const keys: ChunkKeySource = {
  prepareWrite: async () => ({ take: () => ({ generation: 2, key: dek }) }),
  openingKey: async () => dek,
};

test("the chunk thread's sealed chunks open on this thread and on the thread, whatever views they were cut from; a closed thread refuses", async () => {
  const thread = new ChunkThread();
  // Views into one larger buffer, as a batch's pieces are: each must be sealed alone.
  const batch = Buffer.from(Array.from({ length: 300 }, (_, i) => `{"line":"record ${i} ${"x".repeat(i % 40)}"}\n`).join(""));
  const cut = batch.indexOf("record 150") - 10;
  const pieces = [batch.subarray(0, cut), batch.subarray(cut)];
  for (const algorithm of ["brotli", "deflate", "none"] as const) {
    const jobs = pieces.map((plaintext, i) => ({ storeKey: chunkKey("r", "t", i === 0 ? 0 : cut), plaintext, generation: 2, dek }));
    const sealed = await thread.seal({ algorithm, level: 1 }, jobs);
    expect(sealed).toHaveLength(2);
    for (const [i, value] of sealed.entries()) {
      const storeKey = jobs[i]?.storeKey as Buffer;
      expect((await openChunk(keys, "r", storeKey, value)).equals(pieces[i] as Buffer)).toBe(true);
      // Opened on the thread from a view into a larger buffer, as iterator pages are.
      const page = Buffer.concat([Buffer.alloc(7, 1), value, Buffer.alloc(5, 2)]);
      expect((await thread.open(storeKey, page.subarray(7, 7 + value.length), dek)).equals(pieces[i] as Buffer)).toBe(true);
    }
  }
  // The pieces the caller keeps (the tail hub publishes them) are untouched by the transfer.
  expect(Buffer.concat(pieces).equals(batch)).toBe(true);
  await thread.close();
  await expect(
    thread.seal({ algorithm: "none", level: 0 }, [{ storeKey: Buffer.from("k"), plaintext: batch, generation: 0, dek }]),
  ).rejects.toThrow("the chunk thread is closed");
});

test("a chunk that fails authentication on the thread is a ChunkIntegrityError, and the thread goes on", async () => {
  const thread = new ChunkThread("open thread");
  try {
    const storeKey = chunkKey("r", "t", 0);
    const plaintext = Buffer.from('{"line":"hello"}\n');
    const [value] = await thread.seal({ algorithm: "deflate", level: 1 }, [{ storeKey, plaintext, generation: 0, dek }]);
    const altered = Buffer.from(value as Buffer);
    altered[altered.length - 20] = (altered[altered.length - 20] as number) ^ 1;
    await expect(thread.open(storeKey, altered, dek)).rejects.toThrow(ChunkIntegrityError);
    await expect(thread.open(chunkKey("r", "t", 1), value as Buffer, dek)).rejects.toThrow(ChunkIntegrityError);
    await expect(thread.open(storeKey, value as Buffer, Buffer.alloc(32, 4))).rejects.toThrow(ChunkIntegrityError);
    expect((await thread.open(storeKey, value as Buffer, dek)).equals(plaintext)).toBe(true);
  } finally {
    await thread.close();
  }
});
