import { parentPort } from "node:worker_threads";
import { ChunkIntegrityError, openChunkSync, sealChunk } from "./chunk-cipher.js";
import type { ChunkRequest, ChunkResponse } from "./chunk-thread.js";

/**
 * The chunk thread's body: seals every chunk of a commit group, or opens stored
 * chunks for a read, off the event loop that serves the RPCs. Stateless; keys
 * arrive with the chunks and are dropped with them.
 */
const port = parentPort;
if (!port) throw new Error("chunk-worker runs as a worker thread");

const view = (a: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function run(request: ChunkRequest): Array<Buffer | null> {
  if (request.op === "seal") {
    return request.chunks.map((c) => sealChunk(view(c.dek), c.generation, view(c.storeKey), view(c.plaintext), request.compression));
  }
  return request.chunks.map((c) => {
    try {
      return openChunkSync(view(c.dek), view(c.storeKey), view(c.value));
    } catch (err) {
      if (err instanceof ChunkIntegrityError) return null;
      throw err;
    }
  });
}

port.on("message", (request: ChunkRequest) => {
  try {
    const out = run(request).map((b) => (b ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : null));
    // Outputs own fresh memory unless small (pooled): only whole buffers are transferred.
    const transfer = out
      .filter((v): v is Uint8Array => v !== null && v.byteOffset === 0 && v.byteLength === v.buffer.byteLength)
      .map((v) => v.buffer as ArrayBuffer);
    const response: ChunkResponse = { id: request.id, out };
    port.postMessage(response, transfer);
  } catch (err) {
    const response: ChunkResponse = { id: request.id, error: err instanceof Error ? err.message : String(err) };
    port.postMessage(response);
  }
});
