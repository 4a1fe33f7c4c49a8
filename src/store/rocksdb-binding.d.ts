// The subset of @nxtedition/rocksdb (an abstract-level v1 store) that kv-store.ts uses.
// The package ships no types; keeping them this narrow is what keeps the binding replaceable.
declare module "@nxtedition/rocksdb" {
  interface RocksOpenOptions {
    createIfMissing?: boolean;
    errorIfExists?: boolean;
    compression?: boolean;
    compaction?: "level" | "universal";
    memtableMemoryBudget?: number;
    infoLogLevel?: "debug" | "info" | "warn" | "error" | "fatal" | "header" | null;
    keyEncoding?: "buffer";
    valueEncoding?: "buffer";
  }
  interface RocksRange {
    gt?: Buffer;
    gte?: Buffer;
    lt?: Buffer;
    lte?: Buffer;
    reverse?: boolean;
    limit?: number;
    keyEncoding?: "buffer";
    valueEncoding?: "buffer";
  }
  interface RocksIterator {
    nextv(size: number): Promise<Array<[Buffer, Buffer]>>;
    close(): Promise<void>;
  }
  interface RocksChainedBatch {
    put(key: Buffer, value: Buffer): this;
    del(key: Buffer): this;
    write(options?: { sync?: boolean }): Promise<void>;
  }
  class RocksLevel {
    constructor(location: string, options?: RocksOpenOptions);
    readonly status: string;
    open(options?: RocksOpenOptions): Promise<void>;
    close(): Promise<void>;
    getMany(keys: Buffer[], options?: { keyEncoding?: "buffer"; valueEncoding?: "buffer" }): Promise<Array<Buffer | undefined>>;
    batch(): RocksChainedBatch;
    iterator(options?: RocksRange): RocksIterator;
    /** A range read in one synchronous call: rows are key, value, key, value… */
    querySync(options: RocksRange): { rows: Buffer[]; finished: boolean };
    clear(options?: RocksRange): Promise<void>;
    getProperty(property: string): string;
  }
  const rocksdb: { RocksLevel: typeof RocksLevel };
  export default rocksdb;
}
