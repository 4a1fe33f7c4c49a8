import { grpcCode } from "../../../src/client/leader-client.js";
import { TaskLogWriter, type WriterSettings } from "../../../src/worker/task-log-writer.js";
import { faultLine, faultLines } from "./fault-lines.js";

export interface RecordingWorkerOptions {
  url: string;
  runId: string;
  task: string;
  /** Lines written per tick of `tickMs`: the production rate. */
  linesPerTick: number;
  tickMs: number;
  /** Stops producing after this many lines even if not told to stop. */
  maxLines: number;
  settings?: Partial<WriterSettings>;
}

/**
 * A worker as the suite runs it: a real TaskLogWriter fed at a steady pace,
 * keeping track of what it wrote and of what the leader acknowledged. Every
 * line of a fresh task gets sequence number i + 1, so the writer's durable
 * sequence number says exactly which lines are acknowledged.
 */
export class RecordingWorker {
  readonly writer: TaskLogWriter;
  /** Lines written so far. */
  count = 0;
  /** gRPC codes of the failures the writer retried, by code. */
  readonly retries = new Map<number, number>();
  private stopping = false;
  private readonly finished: Promise<void>;

  constructor(private readonly options: RecordingWorkerOptions) {
    this.writer = TaskLogWriter.open({
      leader: options.url,
      runId: options.runId,
      task: options.task,
      settings: { backoffInitialMs: 50, backoffMaxMs: 1000, ...options.settings },
      onRetry: (err) => {
        const code = grpcCode(err) ?? -1;
        this.retries.set(code, (this.retries.get(code) ?? 0) + 1);
      },
    });
    this.finished = this.produce();
    this.finished.catch(() => undefined);
  }

  get task(): string {
    return this.options.task;
  }

  /** Lines the leader has acknowledged as durable. */
  get acknowledgedCount(): number {
    return this.writer.durableSeq;
  }

  /** Resolves once the worker has written all it will (`maxLines`, or up to `stop()`). */
  get produced(): Promise<void> {
    return this.finished;
  }

  /** Stops producing lines; what is written is still delivered. */
  stop(): void {
    this.stopping = true;
  }

  /** Stops producing, completes the task (every line durable) and returns what was written and acknowledged. */
  async finish(): Promise<{ written: string[]; acknowledged: string[] }> {
    this.stop();
    await this.finished;
    await this.writer.complete({ result: "succeeded", exitCode: 0 });
    return this.snapshot();
  }

  /** What was written and acknowledged so far. */
  snapshot(): { written: string[]; acknowledged: string[] } {
    const written = faultLines(this.options.task, this.count);
    return { written, acknowledged: written.slice(0, this.writer.durableSeq) };
  }

  private async produce(): Promise<void> {
    const { task, linesPerTick, tickMs, maxLines } = this.options;
    while (!this.stopping && this.count < maxLines) {
      for (let i = 0; i < linesPerTick && this.count < maxLines; i++) {
        const full = !this.writer.write(i % 10 === 9 ? "stderr" : "stdout", faultLine(task, this.count++));
        if (full) await this.writer.ready();
      }
      await new Promise((resolve) => setTimeout(resolve, tickMs));
    }
  }
}
