import { Worker } from "node:worker_threads";
import { ChunkIntegrityError } from "./chunk-cipher.js";
import type { CompressionSetting } from "./chunk-compression.js";

/** One chunk to seal: its store key (additional data), plaintext, and the data key taken for it. */
export interface SealJob {
  storeKey: Uint8Array;
  plaintext: Uint8Array;
  generation: number;
  dek: Uint8Array;
}

/** One stored chunk to open: its store key, the stored value, and the data key of its generation. */
export interface OpenJob {
  storeKey: Uint8Array;
  value: Uint8Array;
  dek: Uint8Array;
}

export type ChunkRequest =
  | { id: number; op: "seal"; compression: CompressionSetting; chunks: SealJob[] }
  | { id: number; op: "open"; chunks: OpenJob[] };

/** Per chunk, its output, or null for an opened chunk that failed authentication. */
export type ChunkResponse = { id: number; out: Array<Uint8Array | null> } | { id: number; error: string };

type Waiter = { resolve(out: Array<Uint8Array | null>): void; reject(err: Error): void };

/**
 * A worker thread that compresses and encrypts chunks (seal) or decrypts and
 * decompresses them (open). Node's asynchronous zlib API still costs the event
 * loop 85-200 µs per 64 KiB chunk, about what doing it synchronously costs
 * (measured: README, Performance), and the event loop is where both ingest and
 * reads are bound; a message to this thread costs a fraction of that. The leader
 * runs one thread for sealing and one for opening, so reads never queue behind
 * ingest. The thread is restarted if it dies, failing only the work it held.
 */
export class ChunkThread {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Waiter>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly name = "chunk thread") {}

  async seal(compression: CompressionSetting, chunks: SealJob[]): Promise<Buffer[]> {
    if (chunks.length === 0) return [];
    // Exact-size copies: cloning a view would copy its whole backing buffer (a batch, or
    // Node's 8 KiB pool); the copies of plaintext are then moved, not copied again.
    const exact = chunks.map((c) => ({
      storeKey: new Uint8Array(c.storeKey),
      plaintext: new Uint8Array(c.plaintext),
      generation: c.generation,
      dek: new Uint8Array(c.dek),
    }));
    const out = await this.send(
      (id) => ({ id, op: "seal", compression, chunks: exact }),
      exact.map((c) => c.plaintext.buffer),
    );
    return out.map((v) => asBuffer(v as Uint8Array));
  }

  /** The plaintext of one stored chunk; ChunkIntegrityError when it fails authentication. */
  async open(storeKey: Uint8Array, value: Uint8Array, dek: Uint8Array): Promise<Buffer> {
    const job = { storeKey: new Uint8Array(storeKey), value: new Uint8Array(value), dek: new Uint8Array(dek) };
    const [plaintext] = await this.send((id) => ({ id, op: "open", chunks: [job] }), [job.value.buffer]);
    if (!plaintext) throw new ChunkIntegrityError("authentication failed");
    return asBuffer(plaintext);
  }

  /** Starts the thread ahead of its first job, so the first read or commit does not wait for it to load. */
  warm(): void {
    if (!this.closed) this.start();
  }

  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
    this.failAll(new Error(`the ${this.name} is closed`));
  }

  private send(request: (id: number) => ChunkRequest, transfer: ArrayBuffer[]): Promise<Array<Uint8Array | null>> {
    if (this.closed) return Promise.reject(new Error(`the ${this.name} is closed`));
    const worker = this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      // Referenced while it holds work, so a process that is finishing its last commit waits for it.
      if (this.pending.size === 0) worker.ref();
      this.pending.set(id, { resolve, reject });
      worker.postMessage(request(id), transfer);
    });
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = createChunkWorker();
    worker.on("message", (response: ChunkResponse) => {
      const waiter = this.pending.get(response.id);
      if (!waiter) return;
      this.pending.delete(response.id);
      if (this.pending.size === 0) worker.unref();
      if ("error" in response) waiter.reject(new Error(`the ${this.name} failed: ${response.error}`));
      else waiter.resolve(response.out);
    });
    worker.on("error", (err) => {
      if (this.worker === worker) this.worker = undefined;
      this.failAll(err);
    });
    worker.on("exit", (code) => {
      if (this.worker === worker) this.worker = undefined;
      if (!this.closed) this.failAll(new Error(`the ${this.name} exited with code ${code}`));
    });
    // An idle thread must not keep a process alive: the leader's lifetime is its server's.
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private failAll(err: Error): void {
    for (const waiter of this.pending.values()) waiter.reject(err);
    this.pending.clear();
  }
}

function asBuffer(v: Uint8Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/**
 * Built code runs chunk-worker.js. Run from source (tests, `node --import tsx`), the
 * worker registers tsx itself first: loader hooks of the main thread do not reach
 * a worker on Node 20.
 */
function createChunkWorker(): Worker {
  if (!import.meta.url.endsWith(".ts")) return new Worker(new URL("./chunk-worker.js", import.meta.url));
  const entry = JSON.stringify(new URL("./chunk-worker.ts", import.meta.url).href);
  // Resolved here, where tsx is known to be installed, not from the worker's working directory.
  const tsx = JSON.stringify(import.meta.resolve("tsx/esm/api"));
  return new Worker(`import(${tsx}).then((tsx) => { tsx.register(); return import(${entry}); });`, { eval: true });
}
