import { z } from "zod";

/**
 * The one source of truth for joblog's configuration: keys, types, defaults and
 * limits. The README's configuration reference mirrors this file.
 */

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, "expected HOST:PORT, e.g. 127.0.0.1:8080");

const positiveInt = () => z.number().int().positive();

export const serverSchema = z
  .strictObject({
    /** Address of the one port that serves gRPC, gRPC-Web and Connect. */
    listen: hostPort.default("127.0.0.1:8080"),
    /** Directory holding the log store (`joblogs/`) and the metadata store (`meta/`). */
    data_dir: z.string().min(1).default("./data"),
    /**
     * Response compression offered to clients. Off by default: on loopback and LAN
     * gzip costs more CPU than the bytes it saves (measured 3-4x slower Tail).
     */
    compression: z.enum(["none", "gzip"]).default("none"),
    /** How long SIGTERM waits for in-flight batches before closing the stores. */
    shutdown_grace_ms: positiveInt().default(10_000),
  })
  .prefault({});

export const storageSchema = z
  .strictObject({
    /**
     * `wal`: a write is acknowledged once it is in RocksDB's write-ahead log
     * (survives a crash of the leader process, not a power loss).
     * `fsync`: every group commit is synced to disk before acknowledging
     * (survives power loss; slower).
     */
    durability: z.enum(["wal", "fsync"]).default("wal"),
    /** Target size of one stored chunk of JSONL; reads fetch whole chunks. */
    chunk_bytes: z
      .number()
      .int()
      .min(4096)
      .max(4 * 1024 * 1024)
      .default(64 * 1024),
    /**
     * How chunks are compressed before they are encrypted (RocksDB's own
     * compression is off for the log store: ciphertext does not compress).
     */
    chunk_compression: z.enum(["brotli", "deflate", "none"]).default("brotli"),
    /** Brotli quality 0-11 or deflate level 0-9; higher is smaller and slower. */
    chunk_compression_level: z.number().int().min(0).max(11).default(1),
  })
  .superRefine((storage, ctx) => {
    if (storage.chunk_compression === "deflate" && storage.chunk_compression_level > 9) {
      ctx.addIssue({ code: "custom", path: ["chunk_compression_level"], message: "deflate levels are 0-9" });
    }
  })
  .prefault({});

export const encryptionSchema = z
  .strictObject({
    /**
     * Where run data keys come from: `local` wraps them under a master key file,
     * `aws` under an AWS KMS key. Encryption is always on.
     */
    provider: z.enum(["local", "aws"]).default("local"),
    /** The local master key file; `<data_dir>/master.key` when empty. */
    master_key_file: z.string().default(""),
    aws: z
      .strictObject({
        /** Key id, ARN or alias (`alias/joblog`) of a symmetric KMS key. */
        key_id: z.string().default(""),
        /** The region; from the AWS environment when empty. */
        region: z.string().default(""),
        /** An endpoint for KMS-compatible services; AWS's own when empty. */
        endpoint: z.string().default(""),
        /** Bound on one KMS call, retries included. */
        timeout_ms: positiveInt().default(5000),
      })
      .prefault({}),
    /** Plaintext data keys kept in memory: at most this many... */
    data_key_cache_max_keys: positiveInt().default(10_000),
    /** ...each for at most this long after it was fetched from the provider. */
    data_key_cache_max_age_seconds: positiveInt().default(3600),
  })
  .superRefine((encryption, ctx) => {
    if (encryption.provider === "aws" && !encryption.aws.key_id) {
      ctx.addIssue({ code: "custom", path: ["aws", "key_id"], message: "required when encryption.provider is aws" });
    }
  })
  .prefault({});

export const limitsSchema = z
  .strictObject({
    /** Largest protobuf message the leader accepts or sends. */
    max_message_bytes: z
      .number()
      .int()
      .min(64 * 1024)
      .default(4 * 1024 * 1024),
    /** Longer lines are truncated, with a marker naming the bytes cut. */
    max_line_bytes: z
      .number()
      .int()
      .min(256)
      .default(64 * 1024),
    /** Lines in one Push batch. */
    max_lines_per_batch: positiveInt().default(10_000),
    /** Largest Read response and Tail message payload. */
    read_max_bytes: z
      .number()
      .int()
      .min(128 * 1024)
      .default(1024 * 1024),
    /** Largest ListRuns page. */
    max_page_size: positiveInt().default(500),
  })
  .prefault({});

export const runsSchema = z
  .strictObject({
    /**
     * A run whose tasks are all complete and that sees no activity for this long
     * is completed by the leader. 0 disables it.
     */
    idle_timeout_seconds: z.number().int().min(0).default(600),
  })
  .prefault({});

export const tailSchema = z
  .strictObject({
    /** Recently committed bytes kept in memory per tailed task, so live tails skip the store. */
    cache_bytes_per_task: z
      .number()
      .int()
      .min(0)
      .default(4 * 1024 * 1024),
  })
  .prefault({});

export const workerSchema = z
  .strictObject({
    /** A batch is sent when it holds this many lines... */
    batch_max_lines: positiveInt().default(2000),
    /** ...or this many bytes of line text... */
    batch_max_bytes: positiveInt().default(256 * 1024),
    /** ...or when its oldest line is this old. */
    batch_max_interval_ms: positiveInt().default(200),
    /** Lines captured but not yet acknowledged; writers wait when it is full. */
    buffer_max_bytes: z
      .number()
      .int()
      .min(64 * 1024)
      .default(32 * 1024 * 1024),
    /** A Push stream is ended (and its acknowledgement awaited) after this many bytes. */
    stream_max_bytes: z
      .number()
      .int()
      .min(64 * 1024)
      .default(8 * 1024 * 1024),
    /** Longer lines are cut at capture. */
    max_line_bytes: z
      .number()
      .int()
      .min(256)
      .default(64 * 1024),
    /** First reconnect delay; doubles up to `backoff_max_ms`, with full jitter. */
    backoff_initial_ms: positiveInt().default(100),
    backoff_max_ms: positiveInt().default(10_000),
  })
  .prefault({});

export const searchSchema = z
  .strictObject({
    /** Matching lines one Search returns at most. */
    max_matches: positiveInt().default(10_000),
    /** Bytes of a log one Search (or line lookup) scans before it stops, checked after each read (of up to `limits.read_max_bytes`); 1 GiB. */
    max_scan_bytes: positiveInt().default(1024 * 1024 * 1024),
    /** How long one Search runs at most before it ends, saying so. */
    max_duration_ms: positiveInt().default(30_000),
  })
  .prefault({});

export const uiSchema = z
  .strictObject({
    /** Serve the browser UI at `/`. The API and the compatibility routes are served either way. */
    enabled: z.boolean().default(true),
  })
  .prefault({});

export const configSchema = z.strictObject({
  server: serverSchema,
  storage: storageSchema,
  encryption: encryptionSchema,
  limits: limitsSchema,
  runs: runsSchema,
  tail: tailSchema,
  worker: workerSchema,
  search: searchSchema,
  ui: uiSchema,
});

export type JoblogConfig = z.infer<typeof configSchema>;
export type WorkerConfig = JoblogConfig["worker"];
export type LimitsConfig = JoblogConfig["limits"];
export type EncryptionConfig = JoblogConfig["encryption"];
export type SearchConfig = JoblogConfig["search"];
