import { parentPort } from "node:worker_threads";
import { sealChunk } from "./chunk-cipher.js";
import type { SealRequest, SealResponse } from "./seal-thread.js";

/**
 * The seal thread's body: compresses and encrypts every chunk of a commit group,
 * off the event loop that decodes Push streams. Stateless; keys arrive with the
 * chunks and are dropped with them.
 */
const port = parentPort;
if (!port) throw new Error("seal-worker runs as a worker thread");
port.on("message", (request: SealRequest) => {
  try {
    const view = (a: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    const sealed = request.chunks.map((c) => {
      const value = sealChunk(view(c.dek), c.generation, view(c.storeKey), view(c.plaintext), request.compression);
      return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    });
    // Sealed values own fresh memory unless small (pooled): only whole buffers are transferred.
    const transfer = sealed.filter((v) => v.byteOffset === 0 && v.byteLength === v.buffer.byteLength).map((v) => v.buffer as ArrayBuffer);
    const response: SealResponse = { id: request.id, sealed };
    port.postMessage(response, transfer);
  } catch (err) {
    const response: SealResponse = { id: request.id, error: err instanceof Error ? err.message : String(err) };
    port.postMessage(response);
  }
});
