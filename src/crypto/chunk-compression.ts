import { promisify } from "node:util";
import { brotliCompressSync, brotliDecompress, constants, deflateRawSync, inflateRaw } from "node:zlib";

/**
 * Compression of chunks before they are encrypted (ciphertext does not
 * compress). Chunks are compressed on the seal thread (seal-thread.ts), so
 * blocking there is the point; reads decompress with node:zlib's callback API
 * on libuv's pool. Brotli at quality 1 was measured both faster and smaller
 * than deflate at level 1 on CI logs (README: encryption at rest).
 */

export type ChunkCompression = "none" | "deflate" | "brotli";

/** Stored in each chunk's header, so the setting can change without rewriting old chunks. */
export const COMPRESSION_IDS: Record<ChunkCompression, number> = { none: 0, deflate: 1, brotli: 2 };

export interface CompressionSetting {
  algorithm: ChunkCompression;
  level: number;
}

const brotliDecompressAsync = promisify(brotliDecompress);
const inflateRawAsync = promisify(inflateRaw);

function brotliOptions(setting: CompressionSetting, plaintext: Buffer) {
  return {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: setting.level,
      [constants.BROTLI_PARAM_SIZE_HINT]: plaintext.length,
      [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
    },
  };
}

export function compressChunkSync(setting: CompressionSetting, plaintext: Buffer): Buffer {
  switch (setting.algorithm) {
    case "none":
      return plaintext;
    case "deflate":
      return deflateRawSync(plaintext, { level: setting.level });
    case "brotli":
      return brotliCompressSync(plaintext, brotliOptions(setting, plaintext));
  }
}

/** Only ever called on authenticated bytes, so the output is what joblog itself compressed. */
export async function decompressChunk(id: number, body: Buffer): Promise<Buffer> {
  switch (id) {
    case COMPRESSION_IDS.none:
      return body;
    case COMPRESSION_IDS.deflate:
      return inflateRawAsync(body);
    case COMPRESSION_IDS.brotli:
      return brotliDecompressAsync(body);
    default:
      throw new Error(`unknown chunk compression ${id}`);
  }
}
