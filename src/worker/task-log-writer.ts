import { status } from "@grpc/grpc-js";
import { Result, Stream, TaskState } from "../../gen/joblog/v1/log_pb.js";
import { grpcCode, LeaderClient, type LeaderClientOptions } from "../client/leader-client.js";
import { identifierProblem } from "../ids/identifiers.js";
import { truncateLine } from "../lines/line-limit.js";
import { SecretMasker } from "../lines/secret-masker.js";
import { Backoff, sleep } from "./backoff.js";
import { LineSpool } from "./line-spool.js";
import { PendingLines } from "./pending-lines.js";

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
  /** ...or once it has been open this long (default 60 s), so slow output is acknowledged too. */
  streamMaxAgeMs: number;
  /** Cut lines longer than this at capture (default 64 KiB). */
  maxLineBytes: number;
  /** First reconnect delay (default 100 ms); doubles per failure with full jitter... */
  backoffInitialMs: number;
  /** ...up to this (default 10 s). */
  backoffMaxMs: number;
  /**
   * Directory for the on-disk spool: lines that do not fit in `bufferMaxBytes` go to
   * files here instead of holding the command back, up to `spoolMaxBytes`; removed
   * when the writer ends. Empty (the default): no spool.
   */
  spoolDir: string;
  /** Bytes of lines the spool holds at most (default 1 GiB); `write` returns false beyond this. */
  spoolMaxBytes: number;
  /**
   * Past this many bytes held (memory and spool), a line written anyway is dropped, and a
   * record saying how many were dropped goes into the log once there is room. 0 (the
   * default): never drop, the caller must wait for `ready()`.
   */
  dropAfterBytes: number;
}

export const DEFAULT_WRITER_SETTINGS: WriterSettings = {
  batchMaxLines: 2000,
  batchMaxBytes: 256 * 1024,
  batchMaxIntervalMs: 200,
  bufferMaxBytes: 32 * 1024 * 1024,
  streamMaxBytes: 8 * 1024 * 1024,
  streamMaxAgeMs: 60_000,
  maxLineBytes: 64 * 1024,
  backoffInitialMs: 100,
  backoffMaxMs: 10_000,
  spoolDir: "",
  spoolMaxBytes: 1024 * 1024 * 1024,
  dropAfterBytes: 0,
};

export interface TaskLogWriterOptions {
  /** Leader URL (`http://127.0.0.1:8080`) or a client to share. */
  leader: string | LeaderClient;
  /** With a leader URL: the connection's token and TLS material. */
  connection?: LeaderClientOptions;
  runId: string;
  task: string;
  /** Empty or absent: `default` for a new run, the run's own otherwise. */
  workspace?: string;
  workflow?: string;
  settings?: Partial<WriterSettings>;
  /**
   * Secret values replaced by `***` (with their URL-encoded and base64 forms) in
   * every line before it leaves this process; also registered with the leader,
   * which masks again before storing. Each at least 4 bytes.
   */
  masks?: readonly string[];
  /** Told about each failed attempt before the writer backs off and retries. */
  onRetry?: (err: unknown, delayMs: number) => void;
}

export interface TaskOutcome {
  result: "succeeded" | "failed";
  exitCode: number;
  /** Signal that ended the command, if any (`SIGTERM`). */
  signal?: string;
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

// Retrying these cannot succeed: the request itself is wrong or not allowed (ALREADY_EXISTS: the run id is taken).
const PERMANENT = new Set<status>([
  status.INVALID_ARGUMENT,
  status.UNAUTHENTICATED,
  status.PERMISSION_DENIED,
  status.FAILED_PRECONDITION,
  status.ALREADY_EXISTS,
]);

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
  private readonly pending: PendingLines;
  private readonly masker: SecretMasker | undefined;
  private outcome: TaskOutcome | undefined;
  private completed = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  /** Whether the leader has told this writer where the task's log stands. */
  private started = false;
  /** A flush() asked for every line up to this to be durable. */
  private flushTarget = 0;
  private flushWaiters: Array<{ seq: number; resolve(): void; reject(e: Error): void }> = [];
  private doneWaiters: Array<{ resolve(): void; reject(e: Error): void }> = [];
  private readonly stopper = new AbortController();
  private readonly loop: Promise<void>;

  private constructor(private readonly options: TaskLogWriterOptions) {
    this.settings = { ...DEFAULT_WRITER_SETTINGS, ...options.settings };
    const { spoolDir, spoolMaxBytes, dropAfterBytes } = this.settings;
    this.pending = new PendingLines(this.settings.bufferMaxBytes, {
      ...(spoolDir ? { spool: new LineSpool({ dir: spoolDir, maxBytes: spoolMaxBytes }) } : {}),
      dropAfterBytes,
    });
    this.masker = SecretMasker.create(options.masks ?? []);
    this.ownsClient = typeof options.leader === "string";
    this.client = typeof options.leader === "string" ? new LeaderClient(options.leader, options.connection) : options.leader;
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
    try {
      SecretMasker.create(options.masks ?? []);
    } catch (err) {
      throw new TaskLogRefusedError((err as Error).message, status.INVALID_ARGUMENT);
    }
    return new TaskLogWriter(options);
  }

  /** Sequence number of the last line the leader holds durably. */
  get durableSeq(): number {
    return this.pending.durableSeq;
  }

  /**
   * Queues one line (without its terminator). Returns false when the buffer is
   * full: the line is kept, but the caller should await `ready()` before writing more.
   */
  write(stream: OutputStream, text: string | Uint8Array, tsMs = Date.now()): boolean {
    if (this.failure) throw this.failure;
    if (this.outcome) throw new Error("write after complete()");
    const captured = typeof text === "string" ? Buffer.from(text) : text;
    // Lines arrive whole, so a secret split across two pipe reads is masked here all the same; before the cut, so no part of one survives it.
    const raw = this.masker ? this.masker.mask(captured) : captured;
    const hasRoom = this.pending.add(
      stream === "stderr" ? Stream.STDERR : Stream.STDOUT,
      truncateLine(raw, this.settings.maxLineBytes),
      tsMs,
    );
    // A full batch or a full buffer is sent now; a first line arms the batch interval timer.
    const unsent = this.pending.unsentCount;
    if (unsent >= this.settings.batchMaxLines || unsent === 1 || !hasRoom) this.poke();
    return hasRoom;
  }

  /** Resolves when the buffer has room again (or at once if it has). */
  ready(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return this.pending.room();
  }

  /** Completes the task after every written line is durable; resolves when the leader has recorded it. */
  async complete(outcome: TaskOutcome): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.outcome) this.pending.noteDropped(Date.now());
    this.outcome ??= outcome;
    this.poke();
    await new Promise<void>((resolve, reject) => {
      if (this.completed) return resolve();
      this.doneWaiters.push({ resolve, reject });
    });
    await this.loop;
  }

  /**
   * Resolves once every line written so far is durable on the leader, without
   * completing the task: for logs that outlive one writer, such as a driver's lines
   * in the run log `_run`, which completes with its run.
   */
  async flush(): Promise<void> {
    if (this.failure) throw this.failure;
    const seq = this.pending.lastSeq;
    if (this.pending.durableSeq >= seq) return;
    this.flushTarget = Math.max(this.flushTarget, seq);
    this.poke();
    await new Promise<void>((resolve, reject) => this.flushWaiters.push({ seq, resolve, reject }));
  }

  /** Flushes, then stops without completing the task. */
  async close(): Promise<void> {
    await this.flush();
    await this.abort();
  }

  /** Stops without completing; unacknowledged lines are dropped. */
  async abort(): Promise<void> {
    this.stopper.abort();
    this.poke();
    await this.loop.catch(() => undefined);
  }

  private poke(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private acknowledge(durableSeq: number): void {
    this.pending.acknowledge(durableSeq);
    const durable = this.pending.durableSeq;
    this.flushWaiters = this.flushWaiters.filter((w) => {
      if (w.seq > durable) return true;
      w.resolve();
      return false;
    });
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
            // The first answer says where this writer's lines begin; later ones what is durable.
            if (!this.started) this.pending.startAfter(Number(opened.durableSeq));
            this.started = true;
            this.acknowledge(Number(opened.durableSeq));
            if (opened.state === TaskState.COMPLETED && !this.pending.isEmpty) {
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
      for (const w of this.flushWaiters.splice(0)) w.reject(this.failure);
      this.pending.releaseWaiters();
    } finally {
      this.pending.dispose();
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
    this.pending.rewind();
    const endsAt = Date.now() + this.settings.streamMaxAgeMs;
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
        if (!first && Date.now() >= endsAt) break;
        const limits = {
          maxLines: this.settings.batchMaxLines,
          maxBytes: this.settings.batchMaxBytes,
          maxIntervalMs: this.settings.batchMaxIntervalMs,
        };
        const flushing = this.flushTarget > this.pending.durableSeq;
        const batch = this.pending.takeBatch(limits, this.outcome !== undefined || flushing, Date.now());
        const completeNow = this.outcome !== undefined && this.pending.allSent;
        // Everything a flush waits for is sent: end the stream to have it acknowledged.
        const flushNow = flushing && !completeNow && !batch && this.pending.allSent && !first;
        if (flushNow) break;
        if (batch || completeNow || first) {
          const ok = call.write({
            ...(first ? { task: ref, masks: [...(this.options.masks ?? [])] } : {}),
            ...(batch ? { batch: batch.message } : {}),
            ...(completeNow ? { complete: completionOf(this.outcome as TaskOutcome) } : {}),
          });
          first = false;
          streamBytes += batch?.bytes ?? 0;
          streamCost += batch ? PendingLines.costOf(batch) : 0;
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
        await this.waitForWork(endsAt);
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

  /** Waits for new lines, completion, abort, the batch interval of the oldest unsent line, or the stream's end of life. */
  private waitForWork(endsAt: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const oldest = this.pending.oldestUnsentMs;
      const now = Date.now();
      const wait = Math.min(
        endsAt - now,
        oldest === undefined ? Number.POSITIVE_INFINITY : this.settings.batchMaxIntervalMs - (now - oldest),
      );
      const timer = setTimeout(() => this.poke(), Math.max(1, wait));
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
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
