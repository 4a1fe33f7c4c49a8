import { brotliCompressSync, brotliDecompressSync, constants, deflateRawSync, inflateRawSync } from "node:zlib";

/**
 * Compression of chunks before they are encrypted (ciphertext does not
 * compress). Chunks are compressed and decompressed on a chunk thread
 * (chunk-thread.ts), so blocking there is the point. Brotli at quality 1 was measured both faster and smaller
 * than deflate at level 1 on CI logs (README: encryption at rest).
 */

export type ChunkCompression = "none" | "deflate" | "brotli";

/** Stored in each chunk's header, so the setting can change without rewriting old chunks. */
export const COMPRESSION_IDS: Record<ChunkCompression, number> = { none: 0, deflate: 1, brotli: 2 };

export interface CompressionSetting {
  algorithm: ChunkCompression;
  level: number;
}

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

/**
 * zlib's output pieces: its default of 16 KiB makes a 64 KiB chunk four pieces
 * and a concatenation (measured: a third of the decompression time).
 */
const OUTPUT_PIECE_BYTES = 256 * 1024;

/** Only ever called on authenticated bytes, so the output is what joblog itself compressed. */
export function decompressChunkSync(id: number, body: Buffer): Buffer {
  switch (id) {
    case COMPRESSION_IDS.none:
      return body;
    case COMPRESSION_IDS.deflate:
      return exactSize(inflateRawSync(body, { chunkSize: OUTPUT_PIECE_BYTES }));
    case COMPRESSION_IDS.brotli:
      return exactSize(brotliDecompressSync(body, { chunkSize: OUTPUT_PIECE_BYTES }));
    default:
      throw new Error(`unknown chunk compression ${id}`);
  }
}

/** A copy when `b` is a small view of a large piece: plaintexts are cached, and must not pin spare memory. */
function exactSize(b: Buffer): Buffer {
  return b.byteLength * 2 < b.buffer.byteLength ? Buffer.from(b) : b;
}
