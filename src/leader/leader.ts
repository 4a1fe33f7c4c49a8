import { setMaxListeners } from "node:events";
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { compressionGzip, connectNodeAdapter } from "@connectrpc/connect-node";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { AdminService } from "../../gen/joblog/v1/admin_pb.js";
import { LogService } from "../../gen/joblog/v1/log_pb.js";
import { createAdminService } from "../api/admin-service.js";
import { createLogStreamUpgrade } from "../api/compat-websocket.js";
import { grpcPushRoute } from "../api/grpc-push-route.js";
import { grpcReadRoute } from "../api/grpc-read-route.js";
import { grpcTailRoute } from "../api/grpc-tail-route.js";
import { createHealthService } from "../api/health-service.js";
import { createHttpRoutes } from "../api/http-routes.js";
import { listen, type RequestHandler } from "../api/listener.js";
import { createLogService, createPushRpc, createReadRpc, createTailRpc } from "../api/log-service.js";
import { registerServerReflection } from "../api/server-reflection.js";
import { createUiAssets, DEFAULT_UI_DIR } from "../api/ui-assets.js";
import { type Archive, openArchive } from "../archive/open-archive.js";
import { AccessControl } from "../auth/access-control.js";
import { gateHttpRoutes, gateUpgrade } from "../auth/http-auth-gate.js";
import { checkListenPolicy } from "../auth/listen-policy.js";
import { admitRpc, createRpcAuthInterceptor } from "../auth/rpc-auth-interceptor.js";
import { StreamQuota } from "../auth/stream-quota.js";
import { readTlsFiles } from "../auth/tls-files.js";
import type { JoblogConfig } from "../config/config-schema.js";
import { ChunkThread } from "../crypto/chunk-thread.js";
import { CommitQueue } from "../ingest/commit-queue.js";
import { TaskRegistry } from "../ingest/task-registry.js";
import { TaskSizeCap } from "../ingest/task-size-cap.js";
import { openRunKeys } from "../keys/open-run-keys.js";
import { createLeaderLog, type LeaderLog } from "../ops/leader-log.js";
import { LeaderMetrics } from "../ops/leader-metrics.js";
import { Readiness, type ReadinessCheck } from "../ops/readiness.js";
import { LegacyLogs } from "../read/legacy-log.js";
import { LogReader } from "../read/log-reader.js";
import { RetentionSweep } from "../runs/retention-sweep.js";
import { RunDeletion } from "../runs/run-deletion.js";
import { RunDirectory } from "../runs/run-directory.js";
import { FreeSpaceFloor, memtableBudgetFor } from "../store/free-space-floor.js";
import { KvStore } from "../store/kv-store.js";
import { LogStore } from "../store/log-store.js";
import { MetaStore } from "../store/meta-store.js";
import { TailHub } from "../tail/tail-hub.js";
import { ActiveCount } from "./active-count.js";

export interface Leader {
  /** `host:port` the leader listens on. */
  address: string;
  port: number;
  /** Absolute data directory. */
  dataDir: string;
  /** Graceful stop: refuse new work, finish in-flight batches, end tails, close the stores. */
  stop(): Promise<void>;
}

export type { LeaderLog } from "../ops/leader-log.js";

/** Opens the stores and serves LogService on one port; events go to `log` (pino JSON lines on stderr by default). */
export async function startLeader(
  config: JoblogConfig,
  log: LeaderLog = createLeaderLog({ level: config.server.log_level }),
): Promise<Leader> {
  const dataDir = resolve(config.server.data_dir);
  const [host, port] = splitHostPort(config.server.listen);
  checkListenPolicy(config, host, log);
  const tls = config.server.tls && (await readTlsFiles(config.server.tls));
  try {
    await mkdir(dataDir, { recursive: true });
  } catch (err) {
    throw new Error(`cannot create the data directory ${dataDir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const sync = config.storage.durability === "fsync";
  const metrics = new LeaderMetrics();

  const floor = await FreeSpaceFloor.open(dataDir, { minFreeBytes: config.storage.min_free_bytes, warn: log });
  if (floor.below) log(floor.refusal());
  const storeOptions = { warn: log, floor, memtableBudgetBytes: memtableBudgetFor(floor.minFreeBytes) };
  // Chunks arrive compressed and encrypted: RocksDB compression would only burn CPU on them.
  let logKv: KvStore;
  try {
    logKv = await KvStore.open(join(dataDir, "joblogs"), { ...storeOptions, compression: false });
  } catch (err) {
    floor.close();
    throw err;
  }
  let metaKv: KvStore;
  let runKeys: Awaited<ReturnType<typeof openRunKeys>>;
  // The key outage callback needs the run directory, which needs the keys first.
  let directoryRef: RunDirectory | undefined;
  try {
    metaKv = await KvStore.open(join(dataDir, "meta"), { ...storeOptions, compression: true });
    try {
      runKeys = await openRunKeys(config.encryption, dataDir, logKv, {
        onOutageEnded: (run, outage) => directoryRef?.keyOutageEnded(run, outage),
        onKmsCall: (operation, outcome) => metrics.kmsCall(operation, outcome),
      });
    } catch (err) {
      await metaKv.close();
      throw err;
    }
  } catch (err) {
    await logKv.close();
    floor.close();
    throw err;
  }
  const sealThread = new ChunkThread("seal thread");
  const openThread = new ChunkThread("open thread");
  sealThread.warm();
  openThread.warm();
  const logStore = new LogStore(
    logKv,
    runKeys.keys,
    { algorithm: config.storage.chunk_compression, level: config.storage.chunk_compression_level },
    sealThread,
    { openedChunkBytes: config.storage.opened_chunk_cache_bytes, openThread },
  );
  const meta = new MetaStore(metaKv);
  const registry = new TaskRegistry(logStore);
  const hub = new TailHub(config.tail.cache_bytes_per_task, config.tail.cache_bytes);
  let archive: Archive | undefined;
  let sizeCap: TaskSizeCap | undefined;
  const queue = new CommitQueue(logKv, logStore, registry, {
    sync,
    chunkBytes: config.storage.chunk_bytes,
    onCommitted: (appends, states) => {
      hub.publish(appends, states);
      archive?.committed(states);
      sizeCap?.committed(states);
    },
    warn: log,
  });
  sizeCap = new TaskSizeCap({ store: logStore, registry, queue, maxTaskBytes: config.retention.max_task_bytes, log });
  const legacy =
    config.log_storage.local_dir === undefined ? undefined : new LegacyLogs(config.log_storage.local_dir, config.limits.max_line_bytes);
  const directory = new RunDirectory(meta, registry, queue, {
    sync,
    idleTimeoutMs: config.runs.idle_timeout_seconds * 1000,
    warn: log,
    createRunKey: (run, workspace) => runKeys.keys.createRunKey(run, workspace),
    ...(legacy && { runIdTaken: (run: string) => legacy.has(run) }),
  });
  directoryRef = directory;
  await directory.start();
  archive = openArchive(config.log_storage, {
    logKv,
    store: logStore,
    registry,
    queue,
    meta,
    sync,
    serverEvent: (runId, line) => directory.serverEvent(runId, line, { afterCompletion: true }),
    log,
    onFailure: () => metrics.archiveFailed(),
    trimDue: (state) => sizeCap?.trimDue(state) === true,
  });
  await archive?.start();
  const reader = new LogReader(registry, logStore, directory, hub, { legacy, archive: archive?.tier });

  const deletion = new RunDeletion({ directory, meta, store: logStore, registry, keys: runKeys.keys, archive, sync, log });

  const shutdown = new AbortController();
  // Every open Push stream, tail and WebSocket listens for shutdown: thousands is normal, not a leak.
  setMaxListeners(0, shutdown.signal);
  const pushes = new ActiveCount();
  metrics.bind({
    pushStreams: () => pushes.size,
    tailSubscribers: () => hub.subscriberCount,
    archiveBacklogRuns: () => archive?.flusher.backlogRuns,
    storeBytes: () => [
      ["log", logKv.approximateBytes()],
      ["meta", metaKv.approximateBytes()],
    ],
  });
  const readinessChecks: ReadinessCheck[] = [
    { name: "log store", check: async () => storeWrites(logKv, floor) },
    { name: "meta store", check: async () => storeWrites(metaKv) },
  ];
  if (archive) readinessChecks.push({ name: "archive", check: archive.probe });
  if (runKeys.probe) readinessChecks.push({ name: "kms", check: runKeys.probe });
  const readiness = new Readiness(readinessChecks, { cacheMs: 2_000, timeoutMs: config.server.readiness_timeout_ms });
  const serviceDeps = {
    directory,
    queue,
    reader,
    hub,
    meta,
    limits: config.limits,
    search: config.search,
    shutdown: shutdown.signal,
    log,
    pushes,
    metrics,
  };
  const service = createLogService(serviceDeps);
  const legacyWorkspace = config.log_storage.legacy_workspace;
  const access = new AccessControl(config.auth.tokens, async (runId) => {
    const run = await meta.getRun(runId);
    if (run) return run.workspace;
    // A legacy log is in no workspace (outside every scope) unless the operator maps legacy logs to one.
    return legacyWorkspace !== undefined && (await legacy?.has(runId)) ? legacyWorkspace : undefined;
  });
  const quota = new StreamQuota(config.limits);
  const handler = connectNodeAdapter({
    interceptors: [createRpcAuthInterceptor(access, quota)],
    routes: (router) => {
      router.service(LogService, service);
      router.service(
        AdminService,
        createAdminService({
          keys: runKeys.keys,
          deletion,
          log,
          backup: { stores: { logKv, metaKv, writes: directory.writes }, shutdown: shutdown.signal },
        }),
      );
      router.service(
        Health,
        createHealthService({
          readiness,
          services: [LogService.typeName, AdminService.typeName],
          shutdown: shutdown.signal,
          watchIntervalMs: 5_000,
        }),
      );
      registerServerReflection(router, [LogService, AdminService, Health]);
    },
    readMaxBytes: config.limits.max_message_bytes,
    writeMaxBytes: config.limits.max_message_bytes,
    acceptCompression: config.server.compression === "gzip" ? [compressionGzip] : [],
    fallback: gateHttpRoutes(
      access,
      createHttpRoutes(
        { reader, readBytes: config.limits.read_max_bytes, log },
        config.ui.enabled ? createUiAssets(DEFAULT_UI_DIR(), log) : undefined,
        { readiness, metrics, log },
      ),
      log,
    ),
  });
  const logStream = gateUpgrade(
    access,
    quota,
    createLogStreamUpgrade({
      directory,
      reader,
      hub,
      readBytes: config.limits.read_max_bytes,
      shutdown: shutdown.signal,
      log,
    }),
    log,
  );
  // Push, Tail and Read over plain gRPC (workers, the CLI) skip connect-node's per-message stages
  // and copies; every other call, and these over Connect or gRPC-Web, go through it. The routes never
  // compress: with response compression configured, connect-node serves everything.
  const routeOptions = { maxMessageBytes: config.limits.max_message_bytes, log };
  const grpcRoutes =
    config.server.compression === "gzip"
      ? []
      : [
          grpcPushRoute({
            push: createPushRpc(serviceDeps),
            admit: (authorization) => admitRpc(access, quota, "Push", authorization),
            ...routeOptions,
          }),
          grpcTailRoute({
            tail: createTailRpc(serviceDeps),
            admit: (authorization) => admitRpc(access, quota, "Tail", authorization),
            ...routeOptions,
          }),
          grpcReadRoute({
            read: createReadRpc(serviceDeps),
            admit: (authorization) => admitRpc(access, quota, "Read", authorization),
            ...routeOptions,
          }),
        ];
  // Counts requests until their response is closed, so shutdown can let every stream send its final status.
  const requests = new ActiveCount();
  const tracked: RequestHandler = (req, res) => {
    requests.enter();
    let left = false;
    const leave = () => {
      if (left) return;
      left = true;
      requests.leave();
    };
    res.once("finish", leave);
    res.once("close", leave);
    // A client-streaming call answered early (a refusal, a shutdown) has sent its status with
    // its trailers, but "finish" waits for the client to end its side, which a client that has
    // its status may never do. Node sends the trailers in its own "wantTrailers" listener.
    if ("stream" in res) res.stream.once("wantTrailers", () => setImmediate(leave));
    if (grpcRoutes.some((route) => route(req, res))) return;
    (handler as RequestHandler)(req, res);
  };
  let listener: Awaited<ReturnType<typeof listen>>;
  try {
    listener = await listen(tracked, host, port, logStream, tls, {
      timeMs: config.server.keepalive_time_ms,
      timeoutMs: config.server.keepalive_timeout_ms,
    });
  } catch (err) {
    await archive?.stop();
    await Promise.allSettled([logKv.close(), metaKv.close(), sealThread.close(), openThread.close()]);
    runKeys.close();
    floor.close();
    throw err;
  }

  const sweepEvery = Math.min(Math.max(config.runs.idle_timeout_seconds * 250, 1000), 30_000);
  const sweeper = setInterval(() => {
    directory.completeIdleRuns().catch((err: unknown) => log("idle run sweep failed", err));
  }, sweepEvery);
  sweeper.unref();
  const retention = new RetentionSweep({ meta, deletion, log }, config.retention);
  retention.start();

  let stopping: Promise<void> | undefined;
  const stop = async () => {
    clearInterval(sweeper);
    readiness.markStopping();
    await retention.stop();
    shutdown.abort();
    hub.close();
    listener.stopAccepting();
    const deadline = Date.now() + config.server.shutdown_grace_ms;
    await pushes.drained(config.server.shutdown_grace_ms);
    await queue.idle();
    await sizeCap.idle();
    await archive?.stop();
    // Tails and Pushes end with UNAVAILABLE saying where to resume; cutting connections first would lose that.
    await requests.drained(Math.max(0, deadline - Date.now()));
    listener.closeAll();
    await Promise.allSettled([logKv.close(), metaKv.close(), sealThread.close(), openThread.close()]);
    runKeys.close();
    floor.close();
  };
  return {
    address: listener.address,
    port: listener.port,
    dataDir,
    stop: () => {
      stopping ??= stop();
      return stopping;
    },
  };
}

export function splitHostPort(listen: string): [string, number] {
  const at = listen.lastIndexOf(":");
  const host = listen.slice(0, at).replace(/^\[(.*)\]$/, "$1");
  return [host, Number(listen.slice(at + 1))];
}

/** A store is ready while it is open, its writes succeed and (the log store) its disk is above the floor. */
function storeWrites(kv: KvStore, floor?: FreeSpaceFloor): void {
  if (!kv.isOpen) throw new Error(`${kv.location} is not open`);
  const fault = kv.writeFault;
  if (fault !== undefined) throw new Error(`${kv.location}: writes fail (${fault}); nothing is acknowledged until they succeed again`);
  if (floor?.below) throw new Error(floor.refusal(kv.location));
}
