import { isReservedTask, RUN_LOG_TASK, SERVER_EVENTS_TASK } from "../ids/identifiers.js";
import type { CommitQueue } from "../ingest/commit-queue.js";
import { splitTaskKey, type TaskKey, type TaskRegistry, taskKey } from "../ingest/task-registry.js";
import type { LogStore } from "../store/log-store.js";
import type { MetaStore } from "../store/meta-store.js";
import type { TaskLogState } from "../store/task-log-state.js";
import type { ArchiveBackend } from "./archive-backend.js";
import { runKeyBase, segmentsPrefix } from "./archive-key.js";
import type { ArchivedRun, ArchiveLedger } from "./archive-ledger.js";
import { type ArchivedTaskLog, writeRunObject } from "./run-object.js";
import { uploadSegment } from "./segment-upload.js";

export interface ArchiveFlusherOptions {
  backend: ArchiveBackend;
  ledger: ArchiveLedger;
  store: LogStore;
  registry: TaskRegistry;
  queue: CommitQueue;
  meta: MetaStore;
  /** Appends a server event to a run, also once the run is complete (its archive is not final yet). */
  serverEvent(runId: string, line: string): Promise<void>;
  prefix: string;
  flushIntervalMs: number;
  gzipLevel: number;
  log(message: string, err?: unknown): void;
  /** Told of every failed flush of a run (metrics). */
  onFailure?(): void;
  /** True when the per-task size cap is about to drop the oldest chunks of a log in this state. */
  trimDue?(state: TaskLogState): boolean;
}

/**
 * Moves logs from the leader's store to the archive. Every interval, and at once
 * when a task completes, each run with work left goes through its phases:
 *
 * 1. segments: the bytes appended to each task since its last verified segment are
 *    uploaded as a new segment (O(new bytes)), verified, and recorded in the
 *    ledger; a completed task whose bytes are all verified gets its buffer dropped
 *    (one range delete). `_run` and `_server` keep theirs until the run is final.
 * 2. final: once the run is complete and every log is in segments, the run's object
 *    and index are written and verified; then `_run` and `_server` are dropped and
 *    the segments deleted.
 *
 * A failure leaves everything as it was (the ledger only records what was
 * verified) and is retried on the next flush; the first failure of an outage
 * writes one server event to the run.
 */
export class ArchiveFlusher {
  private readonly active = new Set<string>();
  private readonly archivedLengths = new Map<TaskKey, number>();
  private readonly dropped = new Set<TaskKey>();
  /** Runs being deleted: not flushed, whatever commits or timers say. */
  private readonly deleting = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(private readonly o: ArchiveFlusherOptions) {}

  /** Resumes runs left pending by an earlier leader and those still open, then flushes on the interval. */
  async start(): Promise<void> {
    for (const id of await this.o.ledger.pendingRunIds()) this.active.add(id);
    for (const id of await this.o.meta.openRunIds()) this.active.add(id);
    this.timer = setInterval(() => this.kick(), this.o.flushIntervalMs);
    this.timer.unref();
    this.kick();
  }

  /** The commit queue's listener: notes runs with new bytes; a completion is flushed without waiting for the interval. */
  committed(states: ReadonlyMap<TaskKey, TaskLogState>): void {
    let soon = false;
    for (const [key, state] of states) {
      const run = splitTaskKey(key).run;
      if (this.deleting.has(run)) continue;
      this.active.add(run);
      if (state.completion && !state.archived) soon = true;
    }
    if (soon) this.kick();
  }

  /** Runs with work left: bytes not yet archived, or an archive not yet final. */
  get backlogRuns(): number {
    return this.active.size;
  }

  /** Resolves once no flush is running or asked for: what tests and shutdown wait on. */
  async idle(): Promise<void> {
    for (let i = 0; i < 1000 && this.running; i++) await this.running;
  }

  /** Stops flushing a run that is being deleted, once any flush under way has finished. */
  async hold(runId: string): Promise<void> {
    this.deleting.add(runId);
    this.active.delete(runId);
    await this.idle();
  }

  /** The run is deleted: forget it (or, when its deletion failed, flush it again). */
  release(runId: string, deleted: boolean): void {
    this.deleting.delete(runId);
    if (deleted) this.forget(runId);
    else this.active.add(runId);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  private kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.flushAll();
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.running = undefined;
    });
  }

  private async flushAll(): Promise<void> {
    for (const runId of [...this.active]) {
      if (this.stopped) return;
      if (this.deleting.has(runId)) continue;
      try {
        if (await this.flushRun(runId)) this.forget(runId);
      } catch (err) {
        await this.failed(runId, err);
        // The store is likely down: leave the other runs to the next flush, this one last.
        this.active.delete(runId);
        this.active.add(runId);
        return;
      }
    }
  }

  /** One pass over a run; true when its archive is done. */
  private async flushRun(runId: string): Promise<boolean> {
    const record = await this.o.meta.getRun(runId);
    if (!record) return true;
    let archived = await this.o.ledger.run(runId);
    if (!archived) {
      archived = { runId, base: runKeyBase(this.o.prefix, record), phase: "segments" };
      await this.o.ledger.setRun(archived);
    }
    if (archived.phase === "segments") {
      const logs = await this.uploadNewBytes(archived);
      if (!logs) {
        await this.recovered(archived);
        return false;
      }
      await writeRunObject(this.o.backend, archived.base, record, logs);
      await this.recovered(archived);
      archived = { runId, base: archived.base, phase: "final" };
      await this.o.ledger.setRun(archived);
    }
    if (archived.phase === "final") {
      for (const task of [RUN_LOG_TASK, SERVER_EVENTS_TASK]) {
        await this.drop(runId, task, await this.archivedLength(runId, task));
      }
      const segments: string[] = [];
      for await (const key of this.o.backend.list(segmentsPrefix(archived.base))) segments.push(key);
      await this.o.backend.delete(segments);
      await this.o.ledger.dropSegments(runId);
      await this.o.ledger.setRun({ ...archived, phase: "done" });
    }
    return true;
  }

  /**
   * Uploads what each log of the run gained since the last flush and drops the
   * buffers of completed tasks. Returns the logs when the run is complete and all
   * of it is archived (time for the run's object), undefined otherwise.
   */
  private async uploadNewBytes(archived: ArchivedRun): Promise<ArchivedTaskLog[] | undefined> {
    const runId = archived.runId;
    // The run's completion is read before its task list: no task opens after the run completes, so a
    // list read after it is final. Read the other way round, a pass that began before a task opened
    // and saw the run complete by the time it reached the run log wrote the run's object without it.
    const runComplete = (await this.o.registry.load(taskKey(runId, RUN_LOG_TASK)))?.completion !== undefined;
    const records = await this.o.meta.listTasks(runId);
    const openedAt = new Map(records.map((t) => [t.name, t.openedAt]));
    const names = [...records.map((t) => t.name), RUN_LOG_TASK, SERVER_EVENTS_TASK];
    let complete = runComplete;
    const states: Array<[string, TaskLogState]> = [];
    for (const task of names) {
      const state = await this.o.registry.load(taskKey(runId, task));
      if (!state) continue;
      // A running log over the size cap loses its oldest chunks in a moment: upload after that, or
      // the archive would keep what the cap drops. (A completed one is uploaded as it is.)
      if (!state.completion && this.o.trimDue?.(state)) {
        complete = false;
        continue;
      }
      // Bytes dropped under the size cap before they were archived are not archived either.
      let end = Math.max(await this.archivedLength(runId, task), state.retainedFrom ?? 0);
      while (end < state.length && !state.archived) {
        let segment: Awaited<ReturnType<typeof uploadSegment>>;
        try {
          segment = await uploadSegment(this.o, archived.base, runId, task, end, state.length);
        } catch (err) {
          // The size cap dropped these bytes while they were being read: go on from where the log now begins.
          const retainedFrom = (await this.o.registry.load(taskKey(runId, task)))?.retainedFrom ?? 0;
          if (retainedFrom <= end) throw err;
          end = retainedFrom;
          continue;
        }
        await this.o.ledger.addSegment(runId, segment);
        end = segment.members.plainEnd;
        this.archivedLengths.set(taskKey(runId, task), end);
      }
      if (state.completion && !isReservedTask(task)) await this.drop(runId, task, end);
      if (!state.completion || end < state.length) complete = false;
      states.push([task, state]);
    }
    if (!complete) return undefined;
    const logs: ArchivedTaskLog[] = [];
    for (const [task, state] of states) {
      const opened = openedAt.get(task);
      logs.push({ task, state, ...(opened !== undefined && { openedAt: opened }), segments: await this.o.ledger.segments(runId, task) });
    }
    return logs;
  }

  /** Marks a completed log archived, then drops its chunks — only when the archive verifiably holds all of it. */
  private async drop(runId: string, task: string, archivedLength: number): Promise<void> {
    const key = taskKey(runId, task);
    if (this.dropped.has(key)) return;
    const state = await this.o.queue.run([key], (ctx) => {
      const s = ctx.state(key);
      if (!s?.completion || s.length !== archivedLength || s.archived) return s;
      const next: TaskLogState = { ...s, archived: true };
      ctx.setState(key, next);
      return next;
    });
    // The state says "archived" before the chunks go: a crash between leaves chunks nobody reads, dropped on the next pass.
    if (!state?.archived) return;
    await this.o.store.dropChunks(runId, task);
    this.dropped.add(key);
  }

  private async archivedLength(runId: string, task: string): Promise<number> {
    const key = taskKey(runId, task);
    let length = this.archivedLengths.get(key);
    if (length === undefined) {
      length = await this.o.ledger.archivedLength(runId, task);
      this.archivedLengths.set(key, length);
    }
    return length;
  }

  /** Ends the run's outage, if it had one: its uploads work again. */
  private async recovered(archived: ArchivedRun): Promise<void> {
    if (archived.failingSince === undefined) return;
    const seconds = Math.round((Date.now() - archived.failingSince) / 1000);
    this.o.log(`archive of run ${archived.runId} to ${this.o.backend.description} works again after ${seconds}s`);
    await this.o.ledger.setRun({ runId: archived.runId, base: archived.base, phase: archived.phase });
  }

  /**
   * Reports a failed flush: always to the leader's log; to the run's `_server` once per
   * outage (the ledger remembers it, so a restart in the middle of one does not repeat it).
   */
  private async failed(runId: string, err: unknown): Promise<void> {
    this.o.onFailure?.();
    this.o.log(`archive flush of run ${runId} to ${this.o.backend.description} failed; retrying in ${this.o.flushIntervalMs} ms`, err);
    const archived = await this.o.ledger.run(runId).catch(() => undefined);
    // Once the run's object is final, `_server` is in it: later trouble (cleanup) goes to the leader's log only.
    if (archived?.phase !== "segments" || archived.failingSince !== undefined) return;
    await this.o.ledger
      .setRun({ ...archived, failingSince: Date.now() })
      .catch((e: unknown) => this.o.log("archive ledger write failed", e));
    const reason = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    await this.o.serverEvent(
      runId,
      `archive: upload to ${this.o.backend.description} failed (${reason.slice(0, 300)}); retrying every ` +
        `${this.o.flushIntervalMs / 1000}s; the logs stay in the leader's store until the upload is verified`,
    );
  }

  private forget(runId: string): void {
    this.active.delete(runId);
    const prefix = taskKey(runId, "");
    for (const key of this.archivedLengths.keys()) if (key.startsWith(prefix)) this.archivedLengths.delete(key);
    for (const key of this.dropped) if (key.startsWith(prefix)) this.dropped.delete(key);
  }
}
