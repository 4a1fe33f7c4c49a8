/**
 * How a chunk of JSONL is stored as a value. The first byte is a format version
 * so the format can evolve (compression and encryption come as new versions)
 * while old values stay readable.
 */

const PLAIN_V1 = 1;

export class ChunkFormatError extends Error {
  override name = "ChunkFormatError";
}

export function encodeChunk(plaintext: Buffer): Buffer {
  const out = Buffer.allocUnsafe(1 + plaintext.length);
  out[0] = PLAIN_V1;
  plaintext.copy(out, 1);
  return out;
}

export function decodeChunk(value: Buffer): Buffer {
  if (value[0] !== PLAIN_V1) throw new ChunkFormatError(`unknown chunk format version ${value[0]}`);
  return value.subarray(1);
}
