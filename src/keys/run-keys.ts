import { ChunkIntegrityError, type ChunkKeySource, type SealingKey } from "../crypto/chunk-cipher.js";
import { failedPrecondition, unavailable } from "../errors/domain-error.js";
import type { KvStore } from "../store/kv-store.js";
import { dataKeyKey, dataKeyRange, nonceLeaseKey, nonceLeaseRange, parseDataKeyKey } from "../store/log-keys.js";
import { DataKeyCache } from "./data-key-cache.js";
import { type DataKeyRecord, decodeDataKeyRecord, encodeDataKeyRecord } from "./data-key-record.js";
import { type EncryptionContext, KeyAccessError, type KeyProvider, KeyUnavailableError } from "./key-provider.js";

/** When a run could not get its data key, and for how long. */
export interface KeyOutage {
  since: number;
  refused: number;
  reason: string;
}

export interface RunKeysOptions {
  cacheMaxKeys: number;
  cacheMaxAgeMs: number;
  /**
   * Chunks one data key may seal before the run moves to a new generation. Random
   * 96-bit nonces stay safe far below 2^32 messages per key; 2^30 leaves room.
   */
  maxChunksPerKey?: number;
  /** Nonce budget reserved on disk at a time, so a crash can only over-count. */
  leaseChunks?: number;
  /** Called when a run gets its data key after the provider had refused it as unreachable. */
  onOutageEnded?: (run: string, outage: KeyOutage) => void;
  now?: () => number;
}

/** A run's current generation, with its nonce budget: `used` of `reserved` chunks sealed. */
interface Writer {
  generation: number;
  context: EncryptionContext;
  key: Buffer;
  used: number;
  reserved: number;
}

const MAX_OUTAGES = 10_000;

/** Whether a log store holds any data key: such a store must not get a fresh master key. */
export async function hasStoredDataKeys(kv: KvStore): Promise<boolean> {
  return (await kv.first(dataKeyRange())) !== undefined;
}

/**
 * One data key per run, wrapped by the key provider and stored beside the run's
 * chunks; plaintext keys only in a bounded, aging cache. Write keys count the
 * chunks they seal; past the per-key budget a run moves to a new key generation
 * (chunks name their generation, so older ones stay readable).
 */
export class RunKeys implements ChunkKeySource {
  private readonly keys: DataKeyCache<Buffer>;
  private readonly writers: DataKeyCache<Writer>;
  private readonly inflight = new Map<string, Promise<unknown>>();
  private readonly outages = new Map<string, KeyOutage>();
  private readonly creating = new Set<Promise<unknown>>();
  private rotating = false;
  private readonly maxChunks: number;
  private readonly lease: number;
  private readonly now: () => number;

  constructor(
    private readonly kv: KvStore,
    readonly provider: KeyProvider,
    private readonly options: RunKeysOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.keys = new DataKeyCache(options.cacheMaxKeys, options.cacheMaxAgeMs, this.now);
    this.writers = new DataKeyCache(options.cacheMaxKeys, options.cacheMaxAgeMs, this.now);
    this.maxChunks = options.maxChunksPerKey ?? 2 ** 30;
    this.lease = Math.min(options.leaseChunks ?? 2 ** 20, this.maxChunks);
  }

  /**
   * Creates the data key of a new run (or finds the one it has). Called before the
   * run exists anywhere else, so a run is never stored without its key.
   */
  async createRunKey(run: string, workspace: string): Promise<void> {
    await this.prepare(run, { run, workspace });
  }

  prepareWrite(run: string): Promise<SealingKey> {
    return this.prepare(run, undefined);
  }

  async openingKey(run: string, generation: number): Promise<Buffer> {
    const id = `${run}\0${generation}`;
    const cached = this.keys.get(id);
    if (cached) return cached;
    return this.once(`open:${id}`, async () => {
      const value = await this.kv.get(dataKeyKey(run, generation));
      if (!value) throw new ChunkIntegrityError(`run ${run} has no data key of generation ${generation}`);
      const record = decodeDataKeyRecord(value);
      try {
        const key = await this.unwrap(record, run);
        this.keys.set(id, key);
        return key;
      } catch (err) {
        if (err instanceof KeyUnavailableError) throw unavailable(`cannot read run ${run} now: ${err.message}; retry later`);
        throw err;
      }
    });
  }

  /**
   * Destroys a run's data keys: every wrapped generation and nonce lease, and the
   * plaintext copies in memory. Whatever of the run is still stored anywhere can
   * no longer be decrypted. Callers make sure nothing writes to the run meanwhile.
   */
  async deleteRun(run: string): Promise<void> {
    const keys = dataKeyRange(run);
    const leases = nonceLeaseRange(run);
    await this.kv.deleteRange(keys.gte, keys.lt);
    await this.kv.deleteRange(leases.gte, leases.lt);
    this.writers.delete(run);
    this.keys.deletePrefix(`${run}\0`);
  }

  /** Re-wraps every stored data key under the provider's current master key; chunks are not touched. */
  async rotate(onProgress?: (done: number) => void): Promise<{ rewrapped: number; unchanged: number }> {
    if (this.rotating) throw failedPrecondition("a key rotation is already running");
    this.rotating = true;
    try {
      return await this.rotateAll(onProgress);
    } catch (err) {
      if (err instanceof KeyUnavailableError) {
        throw unavailable(`key rotation stopped: ${err.message}; every data key is still readable — run the rotation again`);
      }
      if (err instanceof KeyAccessError) throw failedPrecondition(`key rotation stopped: ${err.message}`);
      throw err;
    } finally {
      this.rotating = false;
    }
  }

  private async rotateAll(onProgress?: (done: number) => void): Promise<{ rewrapped: number; unchanged: number }> {
    await this.provider.beginRotation();
    // Keys being created were wrapped under the previous master key: let them land before scanning.
    await Promise.allSettled([...this.creating]);
    let rewrapped = 0;
    let unchanged = 0;
    for await (const [key, value] of this.kv.entries(dataKeyRange(), 256)) {
      const record = decodeDataKeyRecord(value);
      const next = await this.provider.rewrap(record, record.context);
      if (next) {
        await this.kv.write([{ type: "put", key, value: encodeDataKeyRecord({ ...record, ...next }) }], true);
        rewrapped++;
      } else {
        unchanged++;
      }
      onProgress?.(rewrapped + unchanged);
    }
    await this.provider.finishRotation();
    return { rewrapped, unchanged };
  }

  readyToWrite(run: string): SealingKey | undefined {
    const writer = this.writers.get(run);
    if (writer && this.headroom(writer) <= Math.min(writer.reserved, this.maxChunks)) return this.sealingKey(run, writer);
    return undefined;
  }

  private prepare(run: string, create: EncryptionContext | undefined): Promise<SealingKey> {
    const ready = this.readyToWrite(run);
    if (ready) return Promise.resolve(ready);
    return this.once(`write:${run}`, async () => {
      try {
        const ready = await this.loadWriter(run, create);
        const outage = this.outages.get(run);
        if (outage) {
          this.outages.delete(run);
          this.options.onOutageEnded?.(run, outage);
        }
        return this.sealingKey(run, ready);
      } catch (err) {
        if (err instanceof KeyUnavailableError) {
          this.noteOutage(run, err.message);
          throw unavailable(
            `cannot get the data key of run ${run}: ${err.message}; the lines are not stored, retry later (runs whose key is cached go on)`,
          );
        }
        if (err instanceof KeyAccessError) throw failedPrecondition(`cannot get the data key of run ${run}: ${err.message}`);
        throw err;
      }
    });
  }

  /** The run's writer with room in its nonce budget: loaded, rolled to a new generation or given a new lease. */
  private async loadWriter(run: string, create: EncryptionContext | undefined): Promise<Writer> {
    let writer = this.writers.get(run) ?? (await this.loadLatest(run));
    if (!writer) {
      if (!create) throw failedPrecondition(`run ${run} has no data key (it was not created by this leader)`);
      writer = await this.createGeneration(create, 0);
    } else if (this.headroom(writer) > this.maxChunks) {
      writer = await this.createGeneration(writer.context, writer.generation + 1);
    } else if (this.headroom(writer) > writer.reserved) {
      const reserved = Math.min(writer.reserved + this.lease, this.maxChunks);
      await this.kv.write([{ type: "put", key: nonceLeaseKey(run, writer.generation), value: encodeCount(reserved) }], true);
      writer.reserved = reserved;
    }
    this.writers.set(run, writer);
    return writer;
  }

  private async loadLatest(run: string): Promise<Writer | undefined> {
    const latest = await this.kv.first({ ...dataKeyRange(run), reverse: true });
    if (!latest) return undefined;
    const [k, value] = latest;
    const { generation } = parseDataKeyKey(k);
    const record = decodeDataKeyRecord(value);
    const lease = await this.kv.get(nonceLeaseKey(run, generation));
    // How many it sealed before is unknown: count the whole reservation as used.
    const reserved = lease ? decodeCount(lease) : this.maxChunks;
    const key = await this.unwrap(record, run);
    this.keys.set(`${run}\0${generation}`, key);
    return { generation, context: record.context, key, used: reserved, reserved };
  }

  private async createGeneration(context: EncryptionContext, generation: number): Promise<Writer> {
    const creation = (async () => {
      const generated = await this.provider.generateDataKey(context);
      const record: DataKeyRecord = { keyId: generated.keyId, wrapped: generated.wrapped, context, createdAt: this.now() };
      await this.kv.write(
        [
          { type: "put", key: dataKeyKey(context.run, generation), value: encodeDataKeyRecord(record) },
          { type: "put", key: nonceLeaseKey(context.run, generation), value: encodeCount(this.lease) },
        ],
        true,
      );
      this.keys.set(`${context.run}\0${generation}`, generated.plaintext);
      return { generation, context, key: generated.plaintext, used: 0, reserved: this.lease };
    })();
    this.creating.add(creation);
    try {
      return await creation;
    } finally {
      this.creating.delete(creation);
    }
  }

  private async unwrap(record: DataKeyRecord, run: string): Promise<Buffer> {
    if (record.context.run !== run)
      throw new ChunkIntegrityError(`the data key stored for run ${run} belongs to run ${record.context.run}`);
    try {
      return await this.provider.unwrap(record, record.context);
    } catch (err) {
      if (err instanceof KeyAccessError) throw failedPrecondition(`cannot unwrap the data key of run ${run}: ${err.message}`);
      throw err;
    }
  }

  /**
   * Chunks counted once half a lease more is sealed: a writer is renewed while
   * that still fits, so a commit group never runs past its reservation.
   */
  private headroom(writer: Writer): number {
    return writer.used + this.lease / 2;
  }

  private sealingKey(run: string, writer: Writer): SealingKey {
    return {
      take: () => {
        if (writer.used >= writer.reserved) {
          throw new Error(`data key ${writer.generation} of run ${run} has used its nonce reservation (${writer.reserved} chunks)`);
        }
        writer.used++;
        return { generation: writer.generation, key: writer.key };
      },
    };
  }

  private noteOutage(run: string, reason: string): void {
    const outage = this.outages.get(run);
    if (outage) {
      outage.refused++;
      outage.reason = reason;
      return;
    }
    if (this.outages.size >= MAX_OUTAGES) this.outages.delete(this.outages.keys().next().value as string);
    this.outages.set(run, { since: this.now(), refused: 1, reason });
  }

  /** Concurrent callers for the same id share one provider call. */
  private once<T>(id: string, load: () => Promise<T>): Promise<T> {
    const running = this.inflight.get(id);
    if (running) return running as Promise<T>;
    const started = load().finally(() => this.inflight.delete(id));
    this.inflight.set(id, started);
    return started;
  }
}

function encodeCount(n: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

function decodeCount(b: Buffer): number {
  return Number(b.readBigUInt64BE(0));
}
