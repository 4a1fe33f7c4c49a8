import { AuthenticationError, gcmOpen, gcmSealInto, NONCE_BYTES, TAG_BYTES } from "./aes-gcm.js";
import { COMPRESSION_IDS, type CompressionSetting, compressChunkSync, decompressChunkSync } from "./chunk-compression.js";

/**
 * How a chunk of JSONL is stored in the log store (format version 2):
 *
 *     offset  size  field
 *     0       1     format version (2)
 *     1       1     compression (0 none, 1 deflate-raw, 2 brotli)
 *     2       4     data-key generation of the run (big-endian)
 *     6       12    AES-GCM nonce, random per chunk
 *     18      n     ciphertext of the compressed JSONL
 *     18+n    16    GCM tag
 *
 * The additional authenticated data is the 6 header bytes followed by the chunk's
 * store key (run, task, offset): a chunk altered, moved to another offset, task
 * or run, or relabelled with another compression or key fails to authenticate.
 */

export const CHUNK_FORMAT = 2;
const HEADER_BYTES = 6;

/** A run's data key, ready to seal; each take() counts one chunk against the key's nonce budget. */
export interface SealingKey {
  take(): { generation: number; key: Buffer };
}

/** Where the log store gets data keys. */
export interface ChunkKeySource {
  /** Makes a run's current data key ready for sealing (fetching or creating it). */
  prepareWrite(run: string): Promise<SealingKey>;
  /** The run's key when it is ready without waiting (cached, with room in its nonce budget): prepareWrite's fast path. */
  readyToWrite?(run: string): SealingKey | undefined;
  /** The data key that sealed a run's chunks of one generation. */
  openingKey(run: string, generation: number): Promise<Buffer>;
}

/** A stored chunk failed authentication or is not a chunk at all. */
export class ChunkIntegrityError extends Error {
  override name = "ChunkIntegrityError";
}

function header(compression: number, generation: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_BYTES);
  h[0] = CHUNK_FORMAT;
  h[1] = compression;
  h.writeUInt32BE(generation, 2);
  return h;
}

/** Compresses and encrypts one chunk; blocking, so it runs on the chunk thread (chunk-thread.ts). */
export function sealChunk(dek: Buffer, generation: number, storeKey: Buffer, plaintext: Buffer, compression: CompressionSetting): Buffer {
  const body = compressChunkSync(compression, plaintext);
  const head = header(COMPRESSION_IDS[compression.algorithm], generation);
  const out = Buffer.allocUnsafe(HEADER_BYTES + NONCE_BYTES + body.length + TAG_BYTES);
  head.copy(out, 0);
  gcmSealInto(dek, Buffer.concat([head, storeKey]), body, out, HEADER_BYTES);
  return out;
}

export function chunkGeneration(value: Buffer): number {
  if (value.length < HEADER_BYTES + NONCE_BYTES + TAG_BYTES || value[0] !== CHUNK_FORMAT) {
    throw new ChunkIntegrityError(value.length === 0 ? "empty value" : `unknown chunk format ${value[0]}`);
  }
  return value.readUInt32BE(2);
}

/**
 * Decrypts and decompresses one stored chunk; ChunkIntegrityError when it fails
 * authentication. Blocking, so the leader runs it on the chunk thread.
 */
export function openChunkSync(dek: Buffer, storeKey: Buffer, value: Buffer): Buffer {
  chunkGeneration(value);
  let body: Buffer;
  try {
    body = gcmOpen(dek, Buffer.concat([value.subarray(0, HEADER_BYTES), storeKey]), value.subarray(HEADER_BYTES));
  } catch (err) {
    if (err instanceof AuthenticationError) throw new ChunkIntegrityError("authentication failed");
    throw err;
  }
  return decompressChunkSync(value[1] as number, body);
}

/** Opens one stored chunk on this thread, with its run's data key of the chunk's generation. */
export async function openChunk(keys: ChunkKeySource, run: string, storeKey: Buffer, value: Buffer): Promise<Buffer> {
  const dek = await keys.openingKey(run, chunkGeneration(value));
  return openChunkSync(dek, storeKey, value);
}
