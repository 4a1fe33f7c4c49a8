import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  CompleteRunResponseSchema,
  GetRunResponseSchema,
  ListRunsResponseSchema,
  type LogService,
  OpenTaskResponseSchema,
  type PushRequest,
  type PushResponse,
  type ReadRequest,
  ReadResponseSchema,
  type TailRequest,
  TailResponseSchema,
  TaskState,
} from "../../gen/joblog/v1/log_pb.js";
import type { LimitsConfig, SearchConfig } from "../config/config-schema.js";
import { invalidArgument } from "../errors/domain-error.js";
import { type IdField, identifierProblem } from "../ids/identifiers.js";
import type { CommitQueue } from "../ingest/commit-queue.js";
import type { LogRead, LogReader } from "../read/log-reader.js";
import type { RunDirectory } from "../runs/run-directory.js";
import type { MetaStore } from "../store/meta-store.js";
import type { TailHub } from "../tail/tail-hub.js";
import { tailLog } from "../tail/tail-stream.js";
import { type ErrorLogger, toConnectError } from "./error-mapping.js";
import { resultFromProto, runStateFromProto, runToProto, taskToProto } from "./proto-mapping.js";
import { handlePush, type PushContext, type PushMetrics, taskRefInput } from "./push-handler.js";
import { locateLineResponse, searchResponses } from "./search-handler.js";

export interface LogServiceDeps {
  directory: RunDirectory;
  queue: CommitQueue;
  reader: LogReader;
  hub: TailHub;
  meta: MetaStore;
  limits: LimitsConfig;
  search: SearchConfig;
  /** Aborted when the leader begins to shut down. */
  shutdown: AbortSignal;
  log: ErrorLogger;
  /** Counts Push streams in progress, so shutdown can wait for their in-flight batches. */
  pushes: { enter(): void; leave(): void };
  metrics?: PushMetrics;
}

const DEFAULT_PAGE_SIZE = 50;

function requireId(field: IdField, value: string): string {
  const problem = identifierProblem(field, value);
  if (problem) throw invalidArgument(problem);
  return value;
}

function offsetOf(value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw invalidArgument("offset is too large");
  return Number(value);
}

function encodePageToken(key: Buffer): string {
  return key.toString("base64url");
}

function decodePageToken(token: string): Buffer | undefined {
  if (token === "") return undefined;
  const key = Buffer.from(token, "base64url");
  if (key.length === 0 || key.toString("base64url") !== token) throw invalidArgument("page_token is not a token this leader issued");
  return key;
}

/** `fn` with its failures turned into RPC errors (toConnectError), as every handler here answers them. */
function mappingErrors<A extends unknown[], O>(log: ErrorLogger, fn: (...args: A) => Promise<O>): (...args: A) => Promise<O> {
  return async (...args) => {
    try {
      return await fn(...args);
    } catch (err) {
      throw toConnectError(err, log);
    }
  };
}

/** Push as the LogService serves it, errors mapped; also served by the gRPC route without connect-node (grpc-push-route.ts). */
export function createPushRpc(deps: LogServiceDeps): (requests: AsyncIterable<PushRequest>, ctx: PushContext) => Promise<PushResponse> {
  return mappingErrors(deps.log, async (requests: AsyncIterable<PushRequest>, ctx: PushContext) => {
    deps.pushes.enter();
    try {
      return await handlePush(deps, requests, ctx);
    } finally {
      deps.pushes.leave();
    }
  });
}

/** Tail as the LogService serves it, as log reads with errors mapped; also served by the gRPC route (grpc-tail-route.ts). */
export function createTailRpc(deps: LogServiceDeps): (req: TailRequest, signal: AbortSignal) => AsyncGenerator<LogRead> {
  return async function* (req, signal) {
    try {
      const run = requireId("run_id", req.runId);
      const task = requireId("task", req.task);
      yield* tailLog(deps.reader, deps.hub, {
        run,
        task,
        offset: offsetOf(req.offset),
        maxBytes: deps.limits.read_max_bytes,
        signal,
        shutdown: deps.shutdown,
      });
    } catch (err) {
      throw toConnectError(err, deps.log);
    }
  };
}

/** Read as the LogService serves it, errors mapped; also served by the gRPC route (grpc-read-route.ts). */
export function createReadRpc(deps: LogServiceDeps): (req: ReadRequest) => Promise<LogRead> {
  return mappingErrors(deps.log, async (req: ReadRequest) => {
    const run = requireId("run_id", req.runId);
    const task = requireId("task", req.task);
    const limit = deps.limits.read_max_bytes;
    const maxBytes = req.maxBytes === 0 ? limit : Math.min(req.maxBytes, limit);
    return deps.reader.read(run, task, offsetOf(req.offset), maxBytes);
  });
}

/** The LogService implementation: validation at the edge, errors mapped in one place. */
export function createLogService(deps: LogServiceDeps): ServiceImpl<typeof LogService> {
  const fail = (err: unknown) => toConnectError(err, deps.log);
  const unary = <I, O>(fn: (req: I, ctx: HandlerContext) => Promise<O>) => mappingErrors(deps.log, fn);

  const tailRpc = createTailRpc(deps);
  const readRpc = createReadRpc(deps);
  return {
    openTask: unary(async (req) => {
      const opened = await deps.directory.openTask(taskRefInput(req.task));
      return create(OpenTaskResponseSchema, {
        durableSeq: BigInt(opened.progress.durableSeq),
        length: BigInt(opened.progress.length),
        state: opened.progress.completed ? TaskState.COMPLETED : TaskState.RUNNING,
      });
    }),

    push: createPushRpc(deps),

    async *tail(req, ctx) {
      for await (const chunk of tailRpc(req, ctx.signal)) {
        yield create(TailResponseSchema, {
          offset: BigInt(chunk.offset),
          data: chunk.data,
          nextOffset: BigInt(chunk.nextOffset),
          complete: chunk.complete,
        });
      }
    },

    async read(req) {
      const r = await readRpc(req);
      return create(ReadResponseSchema, {
        offset: BigInt(r.offset),
        data: r.data,
        nextOffset: BigInt(r.nextOffset),
        length: BigInt(r.length),
        complete: r.complete,
      });
    },

    listRuns: unary(async (req) => {
      const workspace = req.workspace === "" ? undefined : requireId("workspace", req.workspace);
      const workflow = req.workflow === "" ? undefined : requireId("workflow", req.workflow);
      const state = runStateFromProto(req.state);
      const pageSize = Math.min(req.pageSize || DEFAULT_PAGE_SIZE, deps.limits.max_page_size);
      const page = await deps.meta.listRuns(
        { ...(workspace && { workspace }), ...(workflow && { workflow }), ...(state && { state }) },
        pageSize,
        decodePageToken(req.pageToken),
      );
      return create(ListRunsResponseSchema, {
        runs: page.runs.map(runToProto),
        nextPageToken: page.nextKey ? encodePageToken(page.nextKey) : "",
      });
    }),

    getRun: unary(async (req) => {
      const view = await deps.directory.getRun(requireId("run_id", req.runId));
      return create(GetRunResponseSchema, {
        run: runToProto(view.run),
        tasks: view.tasks.map(taskToProto),
        runLog: taskToProto(view.runLog),
        serverEvents: taskToProto(view.serverEvents),
      });
    }),

    completeRun: unary(async (req) => {
      const run = requireId("run_id", req.runId);
      const result = resultFromProto(req.result);
      if (!result) throw invalidArgument("result must be RESULT_SUCCEEDED or RESULT_FAILED");
      const record = await deps.directory.completeRun(run, result, "completed by the driver");
      return create(CompleteRunResponseSchema, { run: runToProto(record) });
    }),

    async *search(req, ctx) {
      try {
        const run = requireId("run_id", req.runId);
        const task = requireId("task", req.task);
        yield* searchResponses({ ...deps, readBytes: deps.limits.read_max_bytes }, run, task, req, ctx.signal);
      } catch (err) {
        throw fail(err);
      }
    },

    locateLine: unary(async (req, ctx) => {
      const run = requireId("run_id", req.runId);
      const task = requireId("task", req.task);
      return locateLineResponse({ ...deps, readBytes: deps.limits.read_max_bytes }, run, task, req.lineNumber, ctx.signal);
    }),
  };
}
