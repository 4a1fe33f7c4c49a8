import { z } from "zod";
import { identifierProblem } from "../ids/identifiers.js";

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
    /** The leader's own log (JSON lines on stderr): `debug`, `info`, `warn`, `error` or `silent`. */
    log_level: z.enum(["debug", "info", "warn", "error", "silent"]).default("info"),
    /**
     * HTTP/2 keepalive: the leader pings each connection idle this long, and closes
     * it when the ping is not answered within `keepalive_timeout_ms`, so a worker or
     * viewer that vanished without a FIN stops holding a stream.
     */
    keepalive_time_ms: z.number().int().min(100).default(30_000),
    keepalive_timeout_ms: z.number().int().min(100).default(10_000),
    /** Bound on each `/readyz` check (archive, KMS); an unanswered dependency counts as down. */
    readiness_timeout_ms: positiveInt().default(3_000),
    /** TLS on the one port (HTTP/2 and HTTP/1.1 chosen by ALPN); absent: cleartext. */
    tls: z
      .strictObject({
        /** PEM certificate chain of the leader. */
        cert_file: z.string().min(1),
        /** PEM private key of that certificate. */
        key_file: z.string().min(1),
        /** PEM CA bundle: when set, every client must present a certificate it signed (mutual TLS). */
        client_ca_file: z.string().min(1).optional(),
      })
      .optional(),
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
    /**
     * Bytes kept free on the data directory's filesystem: below it new log lines are
     * refused (RESOURCE_EXHAUSTED) before RocksDB meets a full disk, so what was
     * acknowledged can always be replayed and a restart always opens; RocksDB's
     * memtables are sized to a quarter of it. Absent: a tenth of the filesystem,
     * between 4 and 256 MiB. 0 turns the floor off.
     */
    min_free_bytes: z
      .number()
      .int()
      .min(0)
      .refine((n) => n === 0 || n >= 4 * 1024 * 1024, "must be at least 4194304 (4 MiB), or 0 to turn the floor off")
      .optional(),
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
    /**
     * Plaintext of recently opened chunks kept in memory, shared by all readers:
     * tails of one log and a sequential reader's next page open each chunk once.
     */
    opened_chunk_cache_bytes: z
      .number()
      .int()
      .min(0)
      .default(32 * 1024 * 1024),
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
    /** Push streams one token may hold open at once (without auth: not counted). */
    max_push_streams_per_token: positiveInt().default(1000),
    /** Tail subscriptions one token may hold open at once (without auth: not counted). */
    max_tail_subscribers_per_token: positiveInt().default(1000),
    /** Tail subscriptions the leader serves at once, all clients together. */
    max_tail_subscribers: positiveInt().default(10_000),
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
    /** The same cache for all tailed tasks together; over it, the least recently written tasks lose their oldest bytes first. */
    cache_bytes: z
      .number()
      .int()
      .min(0)
      .default(64 * 1024 * 1024),
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
    /**
     * A Push stream is also ended after this long, so a slowly printing task has its
     * lines acknowledged (and its buffer freed) at least this often, and no stream
     * outlives a load balancer's idle or age limit; the next stream follows at once.
     */
    stream_max_age_ms: z.number().int().min(100).default(60_000),
    /** First reconnect delay; doubles up to `backoff_max_ms`, with full jitter. */
    backoff_initial_ms: positiveInt().default(100),
    backoff_max_ms: positiveInt().default(10_000),
    /**
     * On-disk spool: lines past `buffer_max_bytes` go to files under this directory
     * instead of holding the command back, so a worker rides out a leader outage of
     * minutes. Empty (the default): no spool, the command blocks on write.
     */
    spool_dir: z.string().default(""),
    /** Bytes the spool holds at most; past it the command blocks on write. */
    spool_max_bytes: z
      .number()
      .int()
      .min(1024 * 1024)
      .default(1024 * 1024 * 1024),
    /**
     * For library writers that cannot be held back: past this many held bytes a line is
     * dropped and a record saying how many were dropped is logged. 0 (the default): never drop.
     */
    drop_after_bytes: z.number().int().min(0).default(0),
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

export const retentionSchema = z
  .strictObject({
    /**
     * Completed runs that ended more than this many days ago are deleted — logs,
     * data keys, archive objects — as `joblog runs delete` does. 0 (the default)
     * keeps runs forever. Fractions are allowed.
     */
    days: z.number().min(0).default(0),
    /** How often the retention sweep looks for expired runs. */
    sweep_interval_seconds: positiveInt().default(3600),
    /** Runs one sweep deletes at most (it examines at most 20 times as many): the rest wait for the next sweep. */
    max_runs_per_sweep: positiveInt().default(100),
    /**
     * Per-task size cap: once a task's log passes it by a sixteenth, the leader
     * drops the task's oldest chunks until it fits again, keeping the newest output
     * (the end of a failing build is what people need); offsets stay as they were.
     * 1 GiB by default.
     */
    max_task_bytes: z
      .number()
      .int()
      .min(4096)
      .default(1024 * 1024 * 1024),
  })
  .prefault({});

// --- auth: bearer tokens and roles (see src/auth/) ---

export const tokenSchema = z
  .strictObject({
    /** A name for people and for per-token limits; unique. */
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "expected 1-64 characters of A-Z a-z 0-9 . _ -"),
    /** SHA-256 of the token, 64 hex digits (what `joblog tokens create` prints); never the token itself. */
    sha256: z.string().regex(/^[0-9a-f]{64}$/, "expected 64 lowercase hex digits: the SHA-256 of the token"),
    /** worker: OpenTask, Push, CompleteRun; reader: Read, Tail, ListRuns, GetRun, Search, LocateLine; admin: everything. */
    role: z.enum(["worker", "reader", "admin"]),
    /** Limits the token to runs of these workspaces; absent: every workspace. */
    workspaces: z.array(z.string().min(1)).min(1).optional(),
    /** worker only: limits the token to this one run. */
    run: z.string().min(1).optional(),
  })
  .superRefine((t, ctx) => {
    if (t.run !== undefined && t.role !== "worker")
      ctx.addIssue({ code: "custom", path: ["run"], message: "only a worker token can be limited to a run" });
    if (t.role === "admin" && t.workspaces !== undefined)
      ctx.addIssue({ code: "custom", path: ["workspaces"], message: "an admin token covers every workspace" });
  });

export const authSchema = z
  .strictObject({
    /** Accepted bearer tokens. None: no authentication, and the leader serves only on loopback. */
    tokens: z.array(tokenSchema).default([]),
    /** Serve without authentication on a non-loopback address (warned on every start). */
    insecure_no_auth: z.boolean().default(false),
  })
  .superRefine((auth, ctx) => {
    const seen = new Map<string, number>();
    for (const [i, t] of auth.tokens.entries()) {
      if (seen.has(t.name)) ctx.addIssue({ code: "custom", path: ["tokens", i, "name"], message: `duplicate token name ${t.name}` });
      seen.set(t.name, i);
    }
  })
  .prefault({});

// --- log_storage: the archive tier (the published block of Design S, plus joblog's own knobs) ---

/** An object-key prefix: path segments of safe characters, so no key escapes it. */
const archivePrefix = z
  .string()
  .regex(
    /^([A-Za-z0-9!_.*'()-]+\/)*([A-Za-z0-9!_.*'()-]+)?$/,
    "expected segments of A-Z a-z 0-9 ! _ . * ' ( ) - separated by /, e.g. joblog/",
  )
  .refine((p) => !p.split("/").some((segment) => segment === "." || segment === ".."), "may not contain . or .. segments");

const s3Fields = {
  bucket: z.string().min(3, "S3 bucket names have at least 3 characters").optional(),
  /** Region; when absent, the AWS chain's (AWS_REGION), else us-east-1 with an endpoint. */
  region: z.string().min(1).optional(),
  prefix: archivePrefix.default(""),
  /** S3-compatible stores (MinIO, Ceph RGW, LocalStack): their URL; path-style addressing is then used. */
  endpoint: z.url().optional(),
  /** Override of the addressing style; default: path-style exactly when an endpoint is set. */
  force_path_style: z.boolean().optional(),
  /** Explicit credentials; when absent, the standard AWS chain (env, profile, SSO, instance role). */
  access_key_id: z.string().min(1).optional(),
  secret_access_key: z.string().min(1).optional(),
  session_token: z.string().min(1).optional(),
  /** Server-side encryption: none, SSE-S3 (`AES256`) or SSE-KMS (`aws:kms`, with `kms_key_id`). */
  sse: z.enum(["none", "AES256", "aws:kms"]).default("none"),
  kms_key_id: z.string().min(1).optional(),
};

export const archiveSchema = z
  .strictObject({
    type: z.enum(["s3", "local"]),
    ...s3Fields,
    /** Directory of the `local` backend; object keys map to subdirectories. */
    path: z.string().min(1).optional(),
  })
  .superRefine((a, ctx) => {
    if (a.type === "s3" && a.bucket === undefined) ctx.addIssue({ code: "custom", path: ["bucket"], message: "required when type is s3" });
    if (a.type === "local" && a.path === undefined)
      ctx.addIssue({ code: "custom", path: ["path"], message: "required when type is local" });
    checkS3Fields(a, ctx);
  });

/** The legacy `s3` block: an S3 archive without `type`. */
export const legacyS3Schema = z
  .strictObject({ ...s3Fields, bucket: z.string().min(3, "S3 bucket names have at least 3 characters") })
  .superRefine(checkS3Fields);

function checkS3Fields(
  a: { access_key_id?: string | undefined; secret_access_key?: string | undefined; kms_key_id?: string | undefined; sse: string },
  ctx: z.RefinementCtx,
): void {
  if ((a.access_key_id === undefined) !== (a.secret_access_key === undefined)) {
    ctx.addIssue({ code: "custom", path: ["secret_access_key"], message: "access_key_id and secret_access_key go together" });
  }
  if (a.kms_key_id !== undefined && a.sse !== "aws:kms") {
    ctx.addIssue({ code: "custom", path: ["kms_key_id"], message: "only used with sse: aws:kms" });
  }
}

/** A workspace, under the identifier rules every run's workspace follows. */
const workspaceId = z.string().superRefine((value, ctx) => {
  const problem = identifierProblem("workspace", value);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

export const logStorageSchema = z
  .strictObject({
    /** Where a previous system left plain-text logs, `{local_dir}/{run_id}.log`; read as the run log `_run` of run ids joblog does not know. */
    local_dir: z.string().min(1).optional(),
    /**
     * The workspace legacy logs count as in for scope checks. Absent: they are in none, so only
     * tokens not limited to workspaces read them.
     */
    legacy_workspace: workspaceId.optional(),
    /** The archive. Absent (the default): RocksDB keeps every log forever. Wins over `s3`. */
    archive: archiveSchema.optional(),
    /** Legacy form of an S3 archive, still accepted. */
    s3: legacyS3Schema.optional(),
    /** How often new bytes of running tasks are uploaded. */
    flush_interval_ms: z.number().int().min(100).default(10_000),
    /** gzip level of archive objects (1 fastest .. 9 smallest). */
    gzip_level: z.number().int().min(1).max(9).default(6),
    /** Tries of one archive request before the flush gives up until the next interval. */
    retry_attempts: positiveInt().default(5),
    /** First retry delay; doubles per try, with full jitter, up to `retry_max_ms`. */
    retry_initial_ms: positiveInt().default(200),
    retry_max_ms: positiveInt().default(5_000),
    /** One archive request (a part upload, a ranged read) fails after this long. */
    request_timeout_ms: positiveInt().default(30_000),
  })
  .superRefine((l, ctx) => {
    if (l.legacy_workspace !== undefined && l.local_dir === undefined) {
      ctx.addIssue({ code: "custom", path: ["legacy_workspace"], message: "only used with local_dir" });
    }
  })
  .prefault({});

// --- end of log_storage ---

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
  log_storage: logStorageSchema,
  retention: retentionSchema,
  auth: authSchema,
});

export type JoblogConfig = z.infer<typeof configSchema>;
export type WorkerConfig = JoblogConfig["worker"];
export type LimitsConfig = JoblogConfig["limits"];
export type EncryptionConfig = JoblogConfig["encryption"];
export type SearchConfig = JoblogConfig["search"];
export type LogStorageConfig = JoblogConfig["log_storage"];
export type RetentionConfig = JoblogConfig["retention"];
export type AuthConfig = JoblogConfig["auth"];
export type TokenConfig = AuthConfig["tokens"][number];
export type TlsConfig = NonNullable<JoblogConfig["server"]["tls"]>;
