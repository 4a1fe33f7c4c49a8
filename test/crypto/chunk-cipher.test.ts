import { describe, expect, test } from "vitest";
import { ChunkIntegrityError, type ChunkKeySource, chunkGeneration, openChunk, sealChunk } from "../../src/crypto/chunk-cipher.js";
import { chunkKey } from "../../src/store/log-keys.js";

const dek = Buffer.alloc(32, 7);
const keys: ChunkKeySource = {
  prepareWrite: async () => ({ take: () => ({ generation: 5, key: dek }) }),
  openingKey: async (_run, generation) => {
    if (generation !== 5) throw new ChunkIntegrityError(`no data key of generation ${generation}`);
    return dek;
  },
};
const jsonl = Buffer.from('{"ts":"2026-01-01T00:00:00.000Z","stream":"stdout","step":"b","line":"hello hello hello hello"}\n'.repeat(50));
const at = chunkKey("run-1", "build", 4096);

describe.each([
  ["brotli", 1],
  ["deflate", 6],
  ["none", 0],
] as const)("%s", (algorithm, level) => {
  test("seals with the documented header and opens to the same bytes", async () => {
    const value = sealChunk(dek, 5, at, jsonl, { algorithm, level });
    expect(value[0]).toBe(2);
    expect(value[1]).toBe({ none: 0, deflate: 1, brotli: 2 }[algorithm]);
    expect(chunkGeneration(value)).toBe(5);
    if (algorithm !== "none") expect(value.length).toBeLessThan(jsonl.length / 5);
    else expect(value.length).toBe(jsonl.length + 6 + 12 + 16);
    expect((await openChunk(keys, "run-1", at, value)).equals(jsonl)).toBe(true);
  });
});

test("two seals of the same chunk differ (fresh nonce)", async () => {
  const a = sealChunk(dek, 5, at, jsonl, { algorithm: "none", level: 0 });
  const b = sealChunk(dek, 5, at, jsonl, { algorithm: "none", level: 0 });
  expect(a.subarray(6, 18).equals(b.subarray(6, 18))).toBe(false);
});

test("a chunk moved to another offset, task or run, or altered anywhere, does not open", async () => {
  const value = sealChunk(dek, 5, at, jsonl, { algorithm: "brotli", level: 1 });
  const moved = [chunkKey("run-1", "build", 0), chunkKey("run-1", "test", 4096), chunkKey("run-2", "build", 4096)];
  for (const key of moved) await expect(openChunk(keys, "run-1", key, value)).rejects.toThrow(ChunkIntegrityError);
  for (const i of [1, 10, 20, value.length - 1]) {
    const altered = Buffer.from(value);
    altered[i] = (altered[i] as number) ^ 0x80;
    await expect(openChunk(keys, "run-1", at, altered), `byte ${i}`).rejects.toThrow(ChunkIntegrityError);
  }
  const relabelled = Buffer.from(value);
  relabelled.writeUInt32BE(6, 2);
  await expect(openChunk(keys, "run-1", at, relabelled)).rejects.toThrow("no data key of generation 6");
  await expect(openChunk(keys, "run-1", at, Buffer.from([1, ...jsonl]))).rejects.toThrow("unknown chunk format 1");
});
