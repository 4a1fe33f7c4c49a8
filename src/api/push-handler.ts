import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  type Batch,
  type PackedLines,
  type PushRequest,
  type PushResponse,
  PushResponseSchema,
  Stream,
  type TaskRef,
} from "../../gen/joblog/v1/log_pb.js";
import type { LimitsConfig } from "../config/config-schema.js";
import { DomainError, failedPrecondition, invalidArgument, resourceExhausted, unavailable } from "../errors/domain-error.js";
import { identifierProblem, RUN_LOG_TASK } from "../ids/identifiers.js";
import type { CommitQueue } from "../ingest/commit-queue.js";
import { appendBatch, type LogProgress } from "../ingest/log-jobs.js";
import { encodeColumns, encodeLines, type LineColumns, type RawLine } from "../ingest/record-encoder.js";
import { MAX_MASKS, MAX_TOTAL_MASK_BYTES, maskProblem, SecretMasker } from "../lines/secret-masker.js";
import type { OpenedTask, RunDirectory, TaskRefInput } from "../runs/run-directory.js";
import { StoreWriteError } from "../store/kv-store.js";
import { resultFromProto, streamFromProto } from "./proto-mapping.js";

export interface PushDeps {
  directory: RunDirectory;
  queue: CommitQueue;
  limits: LimitsConfig;
  shutdown: AbortSignal;
  metrics?: PushMetrics;
}

/** What a Push stream reports to the leader's metrics. */
export interface PushMetrics {
  pushStreamOpened(): void;
  /** Lines and JSONL bytes a batch added (0 for a resend), and its arrival-to-durable time. */
  committed(lines: number, bytes: number, seconds: number): void;
}

// Batches of one stream committed ahead of their acknowledgement: enough that the
// event loop encodes the next ones while a group is sealed on the chunk thread and
// written (4 left both idle a third of the time: 285k lines/s from one worker, 354k
// with 16), bounded in bytes too, so a stream of large batches holds little memory.
const MAX_INFLIGHT_BATCHES = 16;
const MAX_INFLIGHT_BYTES = 4 * 1024 * 1024;

/** What a Push stream's handler needs of its RPC: through connect-node or the gRPC route (grpc-push-route.ts). */
export type PushContext = Pick<HandlerContext, "signal">;

/** Validates a TaskRef at the edge; INVALID_ARGUMENT names the field. */
export function taskRefInput(ref: TaskRef | undefined): TaskRefInput {
  if (!ref) throw invalidArgument("task is required");
  const checks: Array<[Parameters<typeof identifierProblem>[0], string, boolean]> = [
    ["run_id", ref.runId, true],
    ["task", ref.task, true],
    ["workspace", ref.workspace, false],
    ["workflow", ref.workflow, false],
  ];
  for (const [field, value, required] of checks) {
    if (!required && value === "") continue;
    const problem = identifierProblem(field, value);
    if (problem) throw invalidArgument(`task.${problem}`);
  }
  return { runId: ref.runId, task: ref.task, workspace: ref.workspace, workflow: ref.workflow };
}

/**
 * One Push stream: opens the task on the first message, then commits batches in
 * order, pipelined a few deep, and completes the task when asked. What was
 * acknowledged stays; a refused batch leaves the log as it was and is recorded
 * as a server event of the run, as is a stream that breaks mid-way.
 */
export async function handlePush(deps: PushDeps, requests: AsyncIterable<PushRequest>, ctx: PushContext): Promise<PushResponse> {
  let opened: OpenedTask | undefined;
  let progress: LogProgress = { durableSeq: 0, length: 0, completed: false };
  // Batches of one task commit in order, so each one's share is its progress past the one before.
  let counted = progress;
  const measured = (arrived: number) => (p: LogProgress) => {
    deps.metrics?.committed(p.durableSeq - counted.durableSeq, p.length - counted.length, (performance.now() - arrived) / 1000);
    counted = p;
    return p;
  };
  const inflight: Array<{ committed: Promise<LogProgress>; bytes: number }> = [];
  let inflightBytes = 0;
  const settleOne = async () => {
    const oldest = inflight.shift() as { committed: Promise<LogProgress>; bytes: number };
    inflightBytes -= oldest.bytes;
    progress = await oldest.committed;
  };
  const settle = async () => {
    while (inflight.length > 0) await settleOne();
  };
  let receiving = true;
  // The stream's secrets: in this closure only, never stored, logged or put in an error.
  let maskValues: string[] = [];
  let masker: SecretMasker | undefined;
  // The next request, or undefined once the leader begins to shut down: a worker idle between
  // batches must not hold shutdown for its whole grace period. One listener for the stream,
  // not one per request (adding and removing it was a measurable part of a small batch's cost).
  let onShutdown: (() => void) | undefined;
  const shutdownListener = () => onShutdown?.();
  deps.shutdown.addEventListener("abort", shutdownListener, { once: true });
  const nextRequest = (iterator: AsyncIterator<PushRequest>): Promise<IteratorResult<PushRequest> | undefined> => {
    if (deps.shutdown.aborted) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      onShutdown = () => resolve(undefined);
      iterator.next().then(resolve, reject);
    });
  };
  try {
    const iterator = requests[Symbol.asyncIterator]();
    for (;;) {
      const next = await nextRequest(iterator);
      receiving = false;
      if (next === undefined) {
        await settle();
        throw unavailable(`the leader is shutting down; lines up to seq ${progress.durableSeq} are stored, resend the rest`);
      }
      if (next.done) break;
      const req = next.value;
      if (req.task) {
        const ref = taskRefInput(req.task);
        if (!opened) {
          opened = await deps.directory.openTask(ref);
          progress = opened.progress;
          counted = progress;
          deps.metrics?.pushStreamOpened();
        } else if (ref.runId !== opened.run.runId || ref.task !== opened.task) {
          throw invalidArgument("task must name the same task in every message of a Push stream");
        }
      }
      if (!opened) throw invalidArgument("task is required in the first message of a Push stream");
      if (req.masks.length > 0) {
        maskValues = addMasks(maskValues, req.masks);
        masker = SecretMasker.create(maskValues);
      }
      if (req.batch && batchLineCount(req.batch) > 0) {
        const batch = prepareBatch(req, opened, deps.limits, masker);
        const key = opened.key;
        const arrived = performance.now();
        const committed = deps.queue.run([key], (c) => appendBatch(c, key, batch.firstSeq, batch.encoded)).then(measured(arrived));
        committed.catch(() => undefined); // awaited in order below; this only silences the early rejection
        inflight.push({ committed, bytes: batch.encoded.jsonl.length });
        inflightBytes += batch.encoded.jsonl.length;
        deps.directory.touch(opened.run.runId);
        while (inflight.length > MAX_INFLIGHT_BATCHES || (inflightBytes > MAX_INFLIGHT_BYTES && inflight.length > 1)) await settleOne();
      }
      if (req.complete) {
        if (opened.task === RUN_LOG_TASK) {
          throw failedPrecondition(
            "the run log _run completes with its run (CompleteRun); a driver flushes its lines instead of completing it",
          );
        }
        await settle();
        const result = resultFromProto(req.complete.result);
        if (!result) throw invalidArgument("complete.result must be RESULT_SUCCEEDED or RESULT_FAILED");
        progress = await deps.directory.completeTask(opened.run.runId, opened.task, {
          result,
          exitCode: req.complete.exitCode,
          signal: req.complete.signal,
        });
      }
      // A shutdown that began meanwhile is seen by the next read, before anything more is taken.
      receiving = true;
    }
    await settle();
    return create(PushResponseSchema, {
      durableSeq: BigInt(progress.durableSeq),
      length: BigInt(progress.length),
      completed: progress.completed,
    });
  } catch (err) {
    // Whatever was committed stays committed; let the pipeline finish before reporting.
    for (const outcome of await Promise.allSettled(inflight.map((i) => i.committed)))
      if (outcome.status === "fulfilled") progress = outcome.value;
    if (opened) await recordFailure(deps.directory, opened, err, receiving || ctx.signal.aborted, progress);
    throw err;
  } finally {
    deps.shutdown.removeEventListener("abort", shutdownListener);
  }
}

interface PreparedBatch {
  firstSeq: number;
  encoded: ReturnType<typeof encodeLines>;
}

/** The stream's masks with `added`; errors name the entry and the limit, never the value. */
function addMasks(current: string[], added: readonly string[]): string[] {
  const all = [...current];
  for (const [i, value] of added.entries()) {
    const problem = maskProblem(`masks[${i}]`, value);
    if (problem) throw problem.tooShort ? invalidArgument(problem.message) : resourceExhausted(problem.message);
    if (!all.includes(value)) all.push(value);
  }
  if (all.length > MAX_MASKS) throw resourceExhausted(`the Push stream registered ${all.length} masks; the limit is ${MAX_MASKS}`);
  const total = all.reduce((sum, value) => sum + Buffer.byteLength(value), 0);
  if (total > MAX_TOTAL_MASK_BYTES) {
    throw resourceExhausted(`the Push stream registered ${total} bytes of masks; the limit is ${MAX_TOTAL_MASK_BYTES} in all`);
  }
  return all;
}

/** Lines in a batch, in whichever form it carries them. */
function batchLineCount(batch: Batch): number {
  return batch.packed ? batch.packed.lengths.length : batch.lines.length;
}

function prepareBatch(req: PushRequest, opened: OpenedTask, limits: LimitsConfig, masker: SecretMasker | undefined): PreparedBatch {
  const batch = req.batch;
  if (!batch) throw invalidArgument("batch is required");
  if (batch.packed && batch.lines.length > 0) throw invalidArgument("batch carries both lines and packed; a batch uses one of them");
  const count = batchLineCount(batch);
  if (count > limits.max_lines_per_batch) {
    throw resourceExhausted(`batch holds ${count} lines; the limit is ${limits.max_lines_per_batch} (limits.max_lines_per_batch)`);
  }
  if (batch.firstSeq < 1n) throw invalidArgument("batch.first_seq must be 1 or more");
  if (batch.firstSeq > BigInt(Number.MAX_SAFE_INTEGER)) throw invalidArgument("batch.first_seq is too large");
  const firstSeq = Number(batch.firstSeq);
  const base = batch.baseTsUnixMs > 0n ? Number(batch.baseTsUnixMs) : Date.now();
  if (batch.packed) {
    const columns = packedColumns(batch.packed, base);
    // Masks are rare and need a line to rewrite: that path takes one object per line.
    if (!masker) return { firstSeq, encoded: encodeColumns(opened.task, columns, limits.max_line_bytes) };
    return { firstSeq, encoded: encodeLines(opened.task, maskLines(rawLinesOf(columns), masker), limits.max_line_bytes) };
  }
  const lines: RawLine[] = new Array(batch.lines.length);
  for (let i = 0; i < batch.lines.length; i++) {
    const l = batch.lines[i] as (typeof batch.lines)[number];
    lines[i] = { text: l.text, stream: streamFromProto(l.stream), tsMs: base + l.tsOffsetMs };
  }
  return { firstSeq, encoded: encodeLines(opened.task, masker ? maskLines(lines, masker) : lines, limits.max_line_bytes) };
}

/** Checks that PackedLines' columns agree with each other; INVALID_ARGUMENT names the column. */
function packedColumns(packed: PackedLines, baseTsMs: number): LineColumns {
  const count = packed.lengths.length;
  let total = 0;
  for (const length of packed.lengths) total += length;
  if (total !== packed.text.byteLength) {
    throw invalidArgument(`batch.packed.lengths add up to ${total} bytes but batch.packed.text holds ${packed.text.byteLength}`);
  }
  for (const [field, column] of [
    ["streams", packed.streams],
    ["ts_offsets_ms", packed.tsOffsetsMs],
  ] as const) {
    if (column.length !== 0 && column.length !== count) {
      throw invalidArgument(`batch.packed.${field} has ${column.length} entries for ${count} lines; it must have one per line or none`);
    }
  }
  const streams = packed.streams;
  return {
    text: packed.text,
    lengths: packed.lengths,
    isStderr: streams.length === 0 ? () => false : (i) => streams[i] === Stream.STDERR,
    baseTsMs,
    tsOffsetsMs: packed.tsOffsetsMs,
  };
}

function rawLinesOf(columns: LineColumns): RawLine[] {
  const lines: RawLine[] = [];
  let start = 0;
  for (const [i, length] of columns.lengths.entries()) {
    lines.push({
      text: columns.text.subarray(start, start + length),
      stream: columns.isStderr(i) ? "stderr" : "stdout",
      tsMs: columns.baseTsMs + (columns.tsOffsetsMs[i] ?? 0),
    });
    start += length;
  }
  return lines;
}

/** Masked before encoding, so a secret is never in a record; a stream without masks pays nothing per line. */
function maskLines(lines: RawLine[], masker: SecretMasker): RawLine[] {
  for (const line of lines) line.text = masker.mask(line.text);
  return lines;
}

async function recordFailure(
  directory: RunDirectory,
  opened: OpenedTask,
  err: unknown,
  broken: boolean,
  progress: LogProgress,
): Promise<void> {
  if (err instanceof DomainError && err.kind === "unavailable") return; // shutdown: the worker resends, nothing is wrong
  // A full disk would refuse the event as it refused the batch; the worker was told, and retries.
  if (err instanceof StoreWriteError) return;
  const task = opened.task;
  const reason = err instanceof Error ? err.message : String(err);
  const stored = `lines up to seq ${progress.durableSeq} are stored`;
  let line: string;
  const refused = err instanceof DomainError || (err instanceof ConnectError && err.code === Code.ResourceExhausted);
  if (refused) line = `rejected a Push batch for task ${task}: ${reason}`;
  else if (broken) line = `Push stream for task ${task} broke before it ended (${reason}); ${stored}`;
  else line = `Push for task ${task} failed; ${stored}`;
  await directory.serverEvent(opened.run.runId, line);
}
