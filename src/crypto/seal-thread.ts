import { Worker } from "node:worker_threads";
import type { CompressionSetting } from "./chunk-compression.js";

/** One chunk to seal: its store key (additional data), plaintext, and the data key taken for it. */
export interface SealJob {
  storeKey: Uint8Array;
  plaintext: Uint8Array;
  generation: number;
  dek: Uint8Array;
}

export interface SealRequest {
  id: number;
  compression: CompressionSetting;
  chunks: SealJob[];
}

export type SealResponse = { id: number; sealed: Uint8Array[] } | { id: number; error: string };

/**
 * A worker thread that compresses and encrypts chunks. Node's asynchronous zlib
 * API still costs the event loop ~150 µs per 64 KiB chunk (measured: 117-192 ms
 * per 64 MB of brotli, against 39-47 ms for one message per commit group to this
 * thread), and the event loop is where ingest is bound. One message per group;
 * the thread is restarted if it dies, failing only the groups it held.
 */
export class SealThread {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, { resolve(sealed: Buffer[]): void; reject(err: Error): void }>();
  private nextId = 1;
  private closed = false;

  seal(compression: CompressionSetting, chunks: SealJob[]): Promise<Buffer[]> {
    if (chunks.length === 0) return Promise.resolve([]);
    if (this.closed) return Promise.reject(new Error("the seal thread is closed"));
    const worker = this.start();
    const id = this.nextId++;
    // Exact-size copies: cloning a view would copy its whole backing buffer (a batch, or
    // Node's 8 KiB pool); the copies of plaintext are then moved, not copied again.
    const exact = chunks.map((c) => ({
      storeKey: new Uint8Array(c.storeKey),
      plaintext: new Uint8Array(c.plaintext),
      generation: c.generation,
      dek: new Uint8Array(c.dek),
    }));
    return new Promise<Buffer[]>((resolve, reject) => {
      // Referenced while it holds work, so a process that is finishing its last commit waits for it.
      if (this.pending.size === 0) worker.ref();
      this.pending.set(id, { resolve, reject });
      const request: SealRequest = { id, compression, chunks: exact };
      worker.postMessage(
        request,
        exact.map((c) => c.plaintext.buffer),
      );
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
    this.failAll(new Error("the seal thread is closed"));
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = createSealWorker();
    worker.on("message", (response: SealResponse) => {
      const waiter = this.pending.get(response.id);
      if (!waiter) return;
      this.pending.delete(response.id);
      if (this.pending.size === 0) worker.unref();
      if ("error" in response) waiter.reject(new Error(`sealing chunks failed: ${response.error}`));
      else waiter.resolve(response.sealed.map((v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength)));
    });
    worker.on("error", (err) => {
      if (this.worker === worker) this.worker = undefined;
      this.failAll(err);
    });
    worker.on("exit", (code) => {
      if (this.worker === worker) this.worker = undefined;
      if (!this.closed) this.failAll(new Error(`the seal thread exited with code ${code}`));
    });
    // An idle seal thread must not keep a process alive: the leader's lifetime is its server's.
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private failAll(err: Error): void {
    for (const waiter of this.pending.values()) waiter.reject(err);
    this.pending.clear();
  }
}

/**
 * Built code runs seal-worker.js. Run from source (tests, `node --import tsx`), the
 * worker registers tsx itself first: loader hooks of the main thread do not reach
 * a worker on Node 20.
 */
function createSealWorker(): Worker {
  if (!import.meta.url.endsWith(".ts")) return new Worker(new URL("./seal-worker.js", import.meta.url));
  const entry = JSON.stringify(new URL("./seal-worker.ts", import.meta.url).href);
  // Resolved here, where tsx is known to be installed, not from the worker's working directory.
  const tsx = JSON.stringify(import.meta.resolve("tsx/esm/api"));
  return new Worker(`import(${tsx}).then((tsx) => { tsx.register(); return import(${entry}); });`, { eval: true });
}
