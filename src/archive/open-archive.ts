import type { LogStorageConfig } from "../config/config-schema.js";
import type { CommitQueue } from "../ingest/commit-queue.js";
import type { TaskKey, TaskRegistry } from "../ingest/task-registry.js";
import type { KvStore } from "../store/kv-store.js";
import type { LogStore } from "../store/log-store.js";
import type { MetaStore, RunRecord } from "../store/meta-store.js";
import type { TaskLogState } from "../store/task-log-state.js";
import type { ArchiveBackend } from "./archive-backend.js";
import { deleteArchivedRun } from "./archive-deletion.js";
import { ArchiveFlusher } from "./archive-flusher.js";
import { ArchiveLedger } from "./archive-ledger.js";
import { reindexArchive } from "./archive-reindex.js";
import { type ArchiveTarget, archiveTarget } from "./archive-settings.js";
import { ArchiveTier } from "./archive-tier.js";
import { LazyS3Backend } from "./lazy-s3-backend.js";
import { LocalBackend } from "./local-backend.js";

export interface ArchiveDeps {
  logKv: KvStore;
  store: LogStore;
  registry: TaskRegistry;
  queue: CommitQueue;
  meta: MetaStore;
  sync: boolean;
  serverEvent(runId: string, line: string): Promise<void>;
  log(message: string, err?: unknown): void;
  onFailure?(): void;
  trimDue?(state: TaskLogState): boolean;
}

/** The archive tier of a leader: the flusher that fills it and the reader tier that reads it. */
export interface Archive {
  tier: ArchiveTier;
  flusher: ArchiveFlusher;
  /** Readiness: the backend answers. */
  probe(signal: AbortSignal): Promise<void>;
  /** The commit queue's listener. */
  committed(states: ReadonlyMap<TaskKey, TaskLogState>): void;
  start(): Promise<void>;
  /** Removes a run's objects and its ledger records; the caller holds its flushing (`flusher.hold`). */
  deleteRun(run: RunRecord): Promise<number>;
  /** Ends flushing (requests in flight are aborted; the ledger keeps what was verified). */
  stop(): Promise<void>;
}

/** Builds the archive configured under `log_storage`, or undefined when there is none. */
export function openArchive(config: LogStorageConfig, deps: ArchiveDeps): Archive | undefined {
  const target = archiveTarget(config);
  if (!target) return undefined;
  const abort = new AbortController();
  const backend = createBackend(target, config, abort.signal);
  const ledger = new ArchiveLedger(deps.logKv, deps.sync);
  const flusher = new ArchiveFlusher({
    backend,
    ledger,
    store: deps.store,
    registry: deps.registry,
    queue: deps.queue,
    meta: deps.meta,
    serverEvent: deps.serverEvent,
    prefix: target.prefix,
    flushIntervalMs: config.flush_interval_ms,
    gzipLevel: config.gzip_level,
    log: deps.log,
    ...(deps.onFailure ? { onFailure: deps.onFailure } : {}),
    ...(deps.trimDue ? { trimDue: deps.trimDue } : {}),
  });
  const tier = new ArchiveTier(backend, ledger, deps.meta, target.prefix, deps.log);
  let reindexed: Promise<void> = Promise.resolve();
  return {
    tier,
    flusher,
    probe: (signal) => backend.probe(signal),
    deleteRun: (run) => deleteArchivedRun({ backend, ledger, tier, prefix: target.prefix }, run),
    committed: (states) => flusher.committed(states),
    async start() {
      await flusher.start();
      // In the background: a leader serves what it knows at once, archived runs it does not know as they are adopted.
      const started = Date.now();
      reindexed = reindexArchive(
        { backend, prefix: target.prefix, ledger, meta: deps.meta, store: deps.store, logKv: deps.logKv, sync: deps.sync, log: deps.log },
        abort.signal,
      ).then(
        (report) => {
          if (report.adopted > 0 || report.skipped > 0) {
            deps.log(
              `archive reindex: ${report.adopted} runs adopted from ${backend.description} (${report.indexes} run indexes, ${report.skipped} skipped) in ${Date.now() - started} ms`,
            );
          }
        },
        (err: unknown) => {
          if (!abort.signal.aborted) deps.log(`archive reindex of ${backend.description} failed; it runs again at the next start`, err);
        },
      );
    },
    async stop() {
      abort.abort();
      await reindexed;
      await flusher.stop();
      backend.close();
    },
  };
}

export function createBackend(target: ArchiveTarget, config: LogStorageConfig, signal: AbortSignal): ArchiveBackend {
  const retry = { attempts: config.retry_attempts, initialMs: config.retry_initial_ms, maxMs: config.retry_max_ms };
  if (target.type === "local") return new LocalBackend(target.path, retry, signal);
  return new LazyS3Backend(target, { retry, requestTimeoutMs: config.request_timeout_ms, signal });
}
