import { expect, test } from "vitest";
import { type ChunkKeySource, openChunk } from "../../src/crypto/chunk-cipher.js";
import { SealThread } from "../../src/crypto/seal-thread.js";
import { chunkKey } from "../../src/store/log-keys.js";

const dek = Buffer.alloc(32, 3);
const keys: ChunkKeySource = {
  prepareWrite: async () => ({ take: () => ({ generation: 2, key: dek }) }),
  openingKey: async () => dek,
};

test("the seal thread's chunks open on this thread, whatever views they were cut from; a closed thread refuses", async () => {
  const thread = new SealThread();
  // Views into one larger buffer, as a batch's pieces are: each must be sealed alone.
  const batch = Buffer.from(Array.from({ length: 300 }, (_, i) => `{"line":"record ${i} ${"x".repeat(i % 40)}"}\n`).join(""));
  const cut = batch.indexOf("record 150") - 10;
  const pieces = [batch.subarray(0, cut), batch.subarray(cut)];
  for (const algorithm of ["brotli", "deflate", "none"] as const) {
    const jobs = pieces.map((plaintext, i) => ({ storeKey: chunkKey("r", "t", i === 0 ? 0 : cut), plaintext, generation: 2, dek }));
    const sealed = await thread.seal({ algorithm, level: 1 }, jobs);
    expect(sealed).toHaveLength(2);
    for (const [i, value] of sealed.entries()) {
      expect((await openChunk(keys, "r", jobs[i]?.storeKey as Buffer, value)).equals(pieces[i] as Buffer)).toBe(true);
    }
  }
  // The pieces the caller keeps (the tail hub publishes them) are untouched by the transfer.
  expect(Buffer.concat(pieces).equals(batch)).toBe(true);
  await thread.close();
  await expect(
    thread.seal({ algorithm: "none", level: 0 }, [{ storeKey: Buffer.from("k"), plaintext: batch, generation: 0, dek }]),
  ).rejects.toThrow("the seal thread is closed");
});
