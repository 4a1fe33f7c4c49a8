import { status } from "@grpc/grpc-js";
import { Result, Stream, TaskState } from "../../gen/joblog/v1/log_pb.js";
import { grpcCode, LeaderClient } from "../client/leader-client.js";
import { identifierProblem } from "../ids/identifiers.js";
import { truncateLine } from "../lines/line-limit.js";
import { Backoff, sleep } from "./backoff.js";

export type OutputStream = "stdout" | "stderr";

/** Batching, memory and retry settings of a task log writer; every field has a default. */
export interface WriterSettings {
  /** Send a batch once it holds this many lines (default 2000). */
  batchMaxLines: number;
  /** ...or this many bytes of text (default 256 KiB). */
  batchMaxBytes: number;
  /** ...or once its oldest line is this old (default 200 ms). */
  batchMaxIntervalMs: number;
  /** Captured but unacknowledged bytes, counting ~96 bytes of bookkeeping per line; `write` returns false beyond this (default 32 MiB). */
  bufferMaxBytes: number;
  /** End a Push stream, collecting its acknowledgement, after this many bytes (default 8 MiB). */
  streamMaxBytes: number;
  /** Cut lines longer than this at capture (default 64 KiB). */
  maxLineBytes: number;
  /** First reconnect delay (default 100 ms); doubles per failure with full jitter... */
  backoffInitialMs: number;
  /** ...up to this (default 10 s). */
  backoffMaxMs: number;
}

export const DEFAULT_WRITER_SETTINGS: WriterSettings = {
  batchMaxLines: 2000,
  batchMaxBytes: 256 * 1024,
  batchMaxIntervalMs: 200,
  bufferMaxBytes: 32 * 1024 * 1024,
  streamMaxBytes: 8 * 1024 * 1024,
  maxLineBytes: 64 * 1024,
  backoffInitialMs: 100,
  backoffMaxMs: 10_000,
};

export interface TaskLogWriterOptions {
  /** Leader URL (`http://127.0.0.1:8080`) or a client to share. */
  leader: string | LeaderClient;
  runId: string;
  task: string;
  /** Empty or absent: `default` for a new run, the run's own otherwise. */
  workspace?: string;
  workflow?: string;
  settings?: Partial<WriterSettings>;
  /** Told about each failed attempt before the writer backs off and retries. */
  onRetry?: (err: unknown, delayMs: number) => void;
}

export interface TaskOutcome {
  result: "succeeded" | "failed";
  exitCode: number;
  /** Signal that ended the command, if any (`SIGTERM`). */
  signal?: string;
}

interface Line {
  seq: number;
  stream: Stream;
  text: Uint8Array;
  tsMs: number;
}

/** Thrown when the leader refuses the log for good (bad identifier, completed task, ...); retrying cannot help. */
export class TaskLogRefusedError extends Error {
  override name = "TaskLogRefusedError";
  constructor(
    message: string,
    readonly code: status | undefined,
  ) {
    super(message);
  }
}

// What a buffered line costs beyond its text (the Line object, its Buffer, array slot):
// counted so a flood of short lines (`seq 1 1000000`) is bounded like a few long ones.
const LINE_OVERHEAD_BYTES = 96;

// Retrying these cannot succeed: the request itself is wrong or not allowed.
const PERMANENT = new Set<status>([status.INVALID_ARGUMENT, status.UNAUTHENTICATED, status.PERMISSION_DENIED, status.FAILED_PRECONDITION]);

/**
 * Streams one task's output to the leader. Every line gets its sequence number
 * when it is written and keeps it through resends: after a reconnect the writer
 * asks the leader for its high-water mark and resends only what is after it, so
 * nothing is lost, duplicated or reordered. Memory is bounded: `write` returns
 * false once `bufferMaxBytes` of unacknowledged output is held, and `ready()`
 * resolves when there is room again — the caller pauses its source meanwhile.
 */
export class TaskLogWriter {
  private readonly settings: WriterSettings;
  private readonly client: LeaderClient;
  private readonly ownsClient: boolean;
  private readonly buffer: Line[] = [];
  private bufferedBytes = 0;
  private nextSeq = 1;
  /** Lines at or below this are durable on the leader. */
  private ackedSeq = 0;
  private outcome: TaskOutcome | undefined;
  private completed = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private roomWaiters: Array<() => void> = [];
  private doneWaiters: Array<{ resolve(): void; reject(e: Error): void }> = [];
  private readonly stopper = new AbortController();
  private readonly loop: Promise<void>;

  private constructor(private readonly options: TaskLogWriterOptions) {
    this.settings = { ...DEFAULT_WRITER_SETTINGS, ...options.settings };
    this.ownsClient = typeof options.leader === "string";
    this.client = typeof options.leader === "string" ? new LeaderClient(options.leader) : options.leader;
    this.loop = this.run();
  }

  /** Validates the task's identifiers and starts streaming (the connection is made in the background). */
  static open(options: TaskLogWriterOptions): TaskLogWriter {
    const checks: Array<[Parameters<typeof identifierProblem>[0], string | undefined]> = [
      ["run_id", options.runId],
      ["task", options.task],
      ["workspace", options.workspace || undefined],
      ["workflow", options.workflow || undefined],
    ];
    for (const [field, value] of checks) {
      const problem = value === undefined ? undefined : identifierProblem(field, value);
      if (problem) throw new TaskLogRefusedError(problem, status.INVALID_ARGUMENT);
    }
    if (options.task === "_server") throw new TaskLogRefusedError("task _server is written by the leader only", status.PERMISSION_DENIED);
    return new TaskLogWriter(options);
  }

  /** Sequence number of the last line the leader holds durably. */
  get durableSeq(): number {
    return this.ackedSeq;
  }

  /**
   * Queues one line (without its terminator). Returns false when the buffer is
   * full: the line is kept, but the caller should await `ready()` before writing more.
   */
  write(stream: OutputStream, text: string | Uint8Array, tsMs = Date.now()): boolean {
    if (this.failure) throw this.failure;
    if (this.outcome) throw new Error("write after complete()");
    const raw = typeof text === "string" ? Buffer.from(text) : text;
    const bytes = truncateLine(raw, this.settings.maxLineBytes);
    this.buffer.push({ seq: this.nextSeq++, stream: stream === "stderr" ? Stream.STDERR : Stream.STDOUT, text: bytes, tsMs });
    this.bufferedBytes += bytes.byteLength + LINE_OVERHEAD_BYTES;
    if (this.unsentCount() >= this.settings.batchMaxLines || this.bufferedBytes >= this.settings.bufferMaxBytes) this.poke();
    else if (this.unsentCount() === 1) this.poke(); // arms the interval timer
    return this.bufferedBytes < this.settings.bufferMaxBytes;
  }

  /** Resolves when the buffer has room again (or at once if it has). */
  ready(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.bufferedBytes < this.settings.bufferMaxBytes) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** Completes the task after every written line is durable; resolves when the leader has recorded it. */
  async complete(outcome: TaskOutcome): Promise<void> {
    if (this.failure) throw this.failure;
    this.outcome ??= outcome;
    this.poke();
    await new Promise<void>((resolve, reject) => {
      if (this.completed) return resolve();
      this.doneWaiters.push({ resolve, reject });
    });
    await this.loop;
  }

  /** Stops without completing; unacknowledged lines are dropped. */
  async abort(): Promise<void> {
    this.stopper.abort();
    this.poke();
    await this.loop.catch(() => undefined);
  }

  private unsentCount(): number {
    return this.buffer.length - this.sentIndex;
  }

  /** Index in `buffer` of the first line not yet sent on the current stream. */
  private sentIndex = 0;

  private poke(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private acknowledge(durableSeq: number): void {
    if (durableSeq <= this.ackedSeq) return;
    this.ackedSeq = durableSeq;
    let drop = 0;
    while (drop < this.buffer.length && (this.buffer[drop] as Line).seq <= durableSeq) {
      this.bufferedBytes -= (this.buffer[drop] as Line).text.byteLength + LINE_OVERHEAD_BYTES;
      drop++;
    }
    this.buffer.splice(0, drop);
    this.sentIndex = Math.max(0, this.sentIndex - drop);
    if (this.bufferedBytes < this.settings.bufferMaxBytes) for (const resolve of this.roomWaiters.splice(0)) resolve();
  }

  private async run(): Promise<void> {
    const backoff = new Backoff(this.settings.backoffInitialMs, this.settings.backoffMaxMs);
    const ref = {
      runId: this.options.runId,
      task: this.options.task,
      workspace: this.options.workspace ?? "",
      workflow: this.options.workflow ?? "",
    };
    try {
      // After a clean stream end the writer knows what is durable; after a failure it asks.
      let resync = true;
      while (!this.completed && !this.stopper.signal.aborted) {
        try {
          if (resync) {
            const opened = await this.client.openTask({ task: ref });
            this.acknowledge(Number(opened.durableSeq));
            if (opened.state === TaskState.COMPLETED && this.buffer.length > 0) {
              throw new TaskLogRefusedError(`task ${ref.task} of run ${ref.runId} is already completed`, status.FAILED_PRECONDITION);
            }
            resync = false;
          }
          await this.stream(ref);
          backoff.reset();
        } catch (err) {
          resync = true;
          const code = grpcCode(err);
          if (err instanceof TaskLogRefusedError) throw err;
          if (code !== undefined && PERMANENT.has(code)) throw new TaskLogRefusedError(describe(err), code);
          if (this.stopper.signal.aborted) return;
          const delay = backoff.next();
          this.options.onRetry?.(err, delay);
          await sleep(delay, this.stopper.signal);
        }
      }
    } catch (err) {
      this.failure = err instanceof Error ? err : new Error(String(err));
      for (const w of this.doneWaiters.splice(0)) w.reject(this.failure);
      for (const resolve of this.roomWaiters.splice(0)) resolve();
    } finally {
      if (this.ownsClient) this.client.close();
    }
  }

  /** One Push stream: resend from the high-water mark, send batches, end, collect the acknowledgement. */
  private async stream(ref: { runId: string; task: string; workspace: string; workflow: string }): Promise<void> {
    const call = this.client.push();
    let answered = false;
    void call.answered.then(() => {
      answered = true;
      this.poke();
    });
    this.sentIndex = 0;
    let streamBytes = 0;
    let streamCost = 0;
    let first = true;
    let sentCompletion = false;
    try {
      for (;;) {
        if (this.stopper.signal.aborted) {
          call.cancel();
          return;
        }
        // An answer before the end is a refusal or a shutdown: end() rethrows it.
        if (answered) break;
        const batch = this.takeBatch();
        const completeNow = this.outcome !== undefined && this.sentIndex === this.buffer.length;
        if (batch || completeNow || first) {
          const ok = call.write({
            ...(first ? { task: ref } : {}),
            ...(batch ? { batch } : {}),
            ...(completeNow ? { complete: completionOf(this.outcome as TaskOutcome) } : {}),
          });
          first = false;
          streamBytes += batch?.bytes ?? 0;
          streamCost += batch ? batch.bytes + batch.lines.length * LINE_OVERHEAD_BYTES : 0;
          if (completeNow) {
            sentCompletion = true;
            break;
          }
          if (!ok) await call.drained();
          // The leader acknowledges when a stream ends. End it once what it carried would
          // free half the buffer, so the writer refills one half while the other is acknowledged.
          if (streamBytes >= this.settings.streamMaxBytes || streamCost >= this.settings.bufferMaxBytes / 2) break;
          continue;
        }
        await this.waitForWork();
      }
      const response = await call.end();
      this.acknowledge(Number(response.durableSeq));
      if (sentCompletion && response.completed) {
        this.completed = true;
        for (const w of this.doneWaiters.splice(0)) w.resolve();
      }
    } catch (err) {
      call.cancel();
      throw err;
    }
  }

  /** The next batch when one is due: full, old enough, or the last before completion. */
  private takeBatch(): (ReturnType<typeof batchOf> & { bytes: number }) | undefined {
    const start = this.sentIndex;
    const available = this.buffer.length - start;
    if (available === 0) return undefined;
    const oldest = this.buffer[start] as Line;
    const due =
      available >= this.settings.batchMaxLines ||
      this.outcome !== undefined ||
      Date.now() - oldest.tsMs >= this.settings.batchMaxIntervalMs ||
      this.bufferedBytes >= this.settings.bufferMaxBytes / 2;
    let end = start;
    let bytes = 0;
    while (end < this.buffer.length && end - start < this.settings.batchMaxLines && bytes < this.settings.batchMaxBytes) {
      bytes += (this.buffer[end] as Line).text.byteLength;
      end++;
    }
    if (!due && bytes < this.settings.batchMaxBytes) return undefined;
    this.sentIndex = end;
    return { ...batchOf(this.buffer, start, end), bytes };
  }

  /** Waits for new lines, completion, abort, or the batch interval of the oldest unsent line. */
  private waitForWork(): Promise<void> {
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const oldest = this.buffer[this.sentIndex];
      if (oldest) timer = setTimeout(() => this.poke(), Math.max(1, this.settings.batchMaxIntervalMs - (Date.now() - oldest.tsMs)));
      this.wake = () => {
        if (timer) clearTimeout(timer);
        resolve();
      };
    });
  }
}

function batchOf(buffer: readonly Line[], start: number, end: number) {
  const base = (buffer[start] as Line).tsMs;
  const lines = [];
  for (let i = start; i < end; i++) {
    const l = buffer[i] as Line;
    lines.push({ text: l.text, stream: l.stream, tsOffsetMs: Math.max(0, l.tsMs - base) });
  }
  return { firstSeq: BigInt((buffer[start] as Line).seq), baseTsUnixMs: BigInt(base), lines };
}

function completionOf(outcome: TaskOutcome) {
  return {
    result: outcome.result === "succeeded" ? Result.SUCCEEDED : Result.FAILED,
    exitCode: outcome.exitCode,
    signal: outcome.signal ?? "",
  };
}

function describe(err: unknown): string {
  if (typeof err === "object" && err !== null && "details" in err && typeof err.details === "string") return err.details;
  return err instanceof Error ? err.message : String(err);
}
