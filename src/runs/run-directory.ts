import { alreadyExists, failedPrecondition, notFound, permissionDenied } from "../errors/domain-error.js";
import { RUN_LOG_TASK, SERVER_EVENTS_TASK } from "../ids/identifiers.js";
import type { CommitQueue } from "../ingest/commit-queue.js";
import { appendLeaderRecords, completeLog, createLog, type LogProgress, progressOf } from "../ingest/log-jobs.js";
import { type TaskKey, type TaskRegistry, taskKey } from "../ingest/task-registry.js";
import type { KeyOutage } from "../keys/run-keys.js";
import type { MetaStore, RunRecord, RunResult, TaskRecord } from "../store/meta-store.js";
import type { TaskCompletionState, TaskLogState } from "../store/task-log-state.js";
import { KeyedLock } from "./keyed-lock.js";
import { WriteGate } from "./write-gate.js";

export interface TaskRefInput {
  runId: string;
  task: string;
  workspace: string;
  workflow: string;
}

export interface OpenedTask {
  run: RunRecord;
  task: string;
  key: TaskKey;
  progress: LogProgress;
}

export interface TaskView {
  name: string;
  state: TaskLogState | undefined;
}

interface OpenRun {
  record: RunRecord;
  /** Task name → completed. */
  tasks: Map<string, boolean>;
  lastActivity: number;
}

export interface RunDirectoryOptions {
  sync: boolean;
  idleTimeoutMs: number;
  now?: () => number;
  /** Where problems writing server events go (they must never fail the caller). */
  warn?: (message: string, err: unknown) => void;
  /** Gives a new run its data key; called before the run is stored anywhere. */
  createRunKey?: (runId: string, workspace: string) => Promise<void>;
  /**
   * Whether a new run may not take this id because a legacy log has it
   * (`{log_storage.local_dir}/{run_id}.log`): such a run would inherit the log's
   * reads and its scope. Runs that already exist are not asked about.
   */
  runIdTaken?: (runId: string) => Promise<boolean>;
}

const MAX_PENDING_EVENTS = 10_000;

const DEFAULT_NAME = "default";

/**
 * Runs and their tasks: creation on first use, the run log's lifecycle records,
 * completion by the driver or by the idle timeout, and the lookups behind
 * ListRuns and GetRun. Changes to one run are serialized; the Push hot path
 * only touches it to note activity.
 */
export class RunDirectory {
  private readonly open = new Map<string, OpenRun>();
  /** Server events of runs that do not exist yet (their key outage came first); written when they are created. */
  private readonly earlyEvents = new Map<string, string>();
  private readonly lock = new KeyedLock();
  /** Held by every change that writes both stores; a backup takes its snapshots between them. */
  readonly writes = new WriteGate();
  private readonly now: () => number;

  constructor(
    private readonly meta: MetaStore,
    private readonly registry: TaskRegistry,
    private readonly queue: CommitQueue,
    private readonly options: RunDirectoryOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Loads the runs that were open when the leader stopped, finishing any completion a crash interrupted. */
  async start(): Promise<void> {
    for (const runId of await this.meta.openRunIds()) {
      const record = await this.meta.getRun(runId);
      if (!record) continue;
      const runLog = await this.registry.load(taskKey(runId, RUN_LOG_TASK));
      if (runLog?.completion) {
        await this.meta.write(this.meta.updateRunOps(completedRecord(record, runLog.completion)), this.options.sync);
        continue;
      }
      await this.loadOpenRun(record);
    }
  }

  /** Brings a running run into memory with which of its tasks are complete. */
  private async loadOpenRun(record: RunRecord): Promise<OpenRun> {
    const tasks = new Map<string, boolean>();
    for (const t of await this.meta.listTasks(record.runId)) {
      tasks.set(t.name, (await this.registry.load(taskKey(record.runId, t.name)))?.completion !== undefined);
    }
    const run: OpenRun = { record, tasks, lastActivity: this.now() };
    this.open.set(record.runId, run);
    return run;
  }

  /** Opens a task log, creating the run and the task on first use. */
  openTask(ref: TaskRefInput): Promise<OpenedTask> {
    if (ref.task === SERVER_EVENTS_TASK) {
      return Promise.reject(permissionDenied("task _server holds server events; only the leader writes it"));
    }
    return this.lockedWrite(ref.runId, async () => {
      const finished = await this.finishedTask(ref);
      if (finished) return finished;
      const run = await this.openRun(ref);
      const key = taskKey(run.record.runId, ref.task);
      const now = this.now();
      if (ref.task !== RUN_LOG_TASK && !run.tasks.has(ref.task)) {
        const record: TaskRecord = { name: ref.task, openedAt: now, order: run.tasks.size };
        const updated = { ...run.record, taskCount: run.record.taskCount + 1 };
        await this.meta.write([this.meta.addTaskOp(run.record.runId, record), ...this.meta.updateRunOps(updated)], this.options.sync);
        run.record = updated;
        run.tasks.set(ref.task, false);
      }
      // Apart from the task's record: when creating the log fails (a full disk), the next open creates it.
      if (ref.task !== RUN_LOG_TASK && (await this.registry.load(key)) === undefined) {
        await this.queue.run([key, this.runLogKey(run)], (ctx) => {
          if (!ctx.state(key)) appendLeaderRecords(ctx, this.runLogKey(run), [{ stream: "stdout", line: `task ${ref.task} started` }], now);
          createLog(ctx, key, now);
        });
      }
      run.lastActivity = this.now();
      return { run: run.record, task: ref.task, key, progress: progressOf(await this.registry.load(key)) };
    });
  }

  /**
   * A task of a completed run, opened again: a worker whose completion was acknowledged
   * too late, retrying. It learns the task's state (and may resend lines and completion,
   * which are acknowledged as duplicates); new tasks in a completed run are refused.
   */
  private async finishedTask(ref: TaskRefInput): Promise<OpenedTask | undefined> {
    if (this.open.has(ref.runId)) return undefined;
    const record = await this.meta.getRun(ref.runId);
    if (record?.state !== "completed") return undefined;
    const key = taskKey(ref.runId, ref.task);
    const state = await this.registry.load(key);
    if (!state || ref.task === RUN_LOG_TASK) return undefined;
    return { run: record, task: ref.task, key, progress: progressOf(state) };
  }

  /** Notes that a run did something, which postpones its idle completion. */
  touch(runId: string): void {
    const run = this.open.get(runId);
    if (run) run.lastActivity = this.now();
  }

  /** Completes a task and records it in the run log, atomically. */
  async completeTask(runId: string, task: string, completion: Omit<TaskCompletionState, "endedAt">): Promise<LogProgress> {
    const key = taskKey(runId, task);
    const runLogKey = taskKey(runId, RUN_LOG_TASK);
    const now = this.now();
    const progress = await this.queue.run([key, runLogKey], (ctx) => {
      const before = ctx.state(key);
      const result = completeLog(ctx, key, { ...completion, endedAt: now });
      if (before && !before.completion && task !== RUN_LOG_TASK) {
        const exit = completion.signal ? `signal ${completion.signal}` : `exit code ${completion.exitCode}`;
        const seconds = ((now - before.startedAt) / 1000).toFixed(3);
        appendLeaderRecords(
          ctx,
          runLogKey,
          [
            {
              stream: completion.result === "failed" ? "stderr" : "stdout",
              line: `task ${task} completed: ${completion.result}, ${exit}, after ${seconds}s`,
            },
          ],
          now,
        );
      }
      return result;
    });
    const run = this.open.get(runId);
    if (run) {
      run.tasks.set(task, true);
      run.lastActivity = now;
    }
    return progress;
  }

  /**
   * Completes a run. Tasks still running are closed as failed, each with a server
   * event; then the run log and server events are completed, so their tails end.
   */
  completeRun(runId: string, result: RunResult, by: string): Promise<RunRecord> {
    return this.lockedWrite(runId, async () => {
      const record = this.open.get(runId)?.record ?? (await this.meta.getRun(runId));
      if (!record) throw notFound(`run ${runId} not found`);
      if (record.state === "completed") {
        if (record.result === result) return record;
        throw failedPrecondition(`run ${runId} is already completed as ${record.result}`);
      }
      const tasks = await this.meta.listTasks(runId);
      const keys = [taskKey(runId, RUN_LOG_TASK), taskKey(runId, SERVER_EVENTS_TASK), ...tasks.map((t) => taskKey(runId, t.name))];
      const now = this.now();
      await this.queue.run(keys, (ctx) => {
        const serverKey = taskKey(runId, SERVER_EVENTS_TASK);
        const runLogKey = taskKey(runId, RUN_LOG_TASK);
        for (const t of tasks) {
          const key = taskKey(runId, t.name);
          const state = createLog(ctx, key, now);
          if (state.completion) continue;
          appendLeaderRecords(
            ctx,
            serverKey,
            [{ stream: "stderr", line: `task ${t.name} was still running when the run completed; closed as failed` }],
            now,
          );
          completeLog(ctx, key, { result: "failed", exitCode: -1, signal: "", endedAt: now });
        }
        appendLeaderRecords(
          ctx,
          runLogKey,
          [{ stream: result === "failed" ? "stderr" : "stdout", line: `run completed: ${result} (${by})` }],
          now,
        );
        const done = { result, exitCode: result === "succeeded" ? 0 : 1, signal: "", endedAt: now };
        completeLog(ctx, runLogKey, done);
        completeLog(ctx, serverKey, done);
      });
      const completed = completedRecord(record, { result, endedAt: now });
      await this.meta.write(this.meta.updateRunOps(completed), this.options.sync);
      this.open.delete(runId);
      return completed;
    });
  }

  /**
   * Runs `fn` on a completed run with the run's lock held, so no task of it is
   * opened meanwhile: what deleting a run needs. NOT_FOUND when there is no such
   * run; FAILED_PRECONDITION while it is running (workers may still be streaming).
   */
  withCompletedRun<T>(runId: string, fn: (record: RunRecord) => Promise<T>): Promise<T> {
    // Inside the write gate: a backup must not capture a run half deleted (listed, its logs gone).
    return this.lockedWrite(runId, async () => {
      if (this.open.has(runId)) {
        throw failedPrecondition(`run ${runId} is still running; complete it first (CompleteRun, joblog runs complete), then delete it`);
      }
      const record = await this.meta.getRun(runId);
      if (!record) throw notFound(`run ${runId} not found`);
      if (record.state !== "completed") throw failedPrecondition(`run ${runId} is still running; complete it first, then delete it`);
      return fn(record);
    });
  }

  /** Completes runs whose tasks are all complete and that stayed idle past the timeout. */
  async completeIdleRuns(): Promise<string[]> {
    const timeout = this.options.idleTimeoutMs;
    if (timeout <= 0) return [];
    const now = this.now();
    const done: string[] = [];
    for (const [runId, run] of this.open) {
      if (run.tasks.size === 0 || now - run.lastActivity < timeout) continue;
      if ([...run.tasks.values()].some((completed) => !completed)) continue;
      const failed = await this.anyTaskFailed(runId, [...run.tasks.keys()]);
      const seconds = Math.round(timeout / 1000);
      await this.serverEvent(runId, `run completed by the leader: all tasks complete and idle for ${seconds}s`);
      await this.completeRun(runId, failed ? "failed" : "succeeded", `completed by the leader after ${seconds}s idle`);
      done.push(runId);
    }
    return done;
  }

  /** Records, once, that a run waited for its data key; the run may not exist yet. */
  keyOutageEnded(runId: string, outage: KeyOutage): void {
    const seconds = ((this.now() - outage.since) / 1000).toFixed(1);
    const line =
      `the key provider was unreachable for this run from ${new Date(outage.since).toISOString()} for ${seconds}s: ` +
      `${outage.refused} request(s) were refused with UNAVAILABLE and retried; last error: ${outage.reason}`;
    if (this.open.has(runId)) {
      void this.serverEvent(runId, line);
      return;
    }
    if (this.earlyEvents.size >= MAX_PENDING_EVENTS) this.earlyEvents.delete(this.earlyEvents.keys().next().value as string);
    this.earlyEvents.set(runId, line);
  }

  /**
   * Appends a server event for a run; a failure to do so is reported, never thrown.
   * `afterCompletion`: also when the run is complete (the archive, whose final object comes later).
   */
  async serverEvent(runId: string, line: string, options: { afterCompletion?: boolean } = {}): Promise<void> {
    const key = taskKey(runId, SERVER_EVENTS_TASK);
    try {
      if (!(await this.registry.load(key))) return;
      await this.queue.run([key], (ctx) => appendLeaderRecords(ctx, key, [{ stream: "stderr", line }], this.now(), options));
    } catch (err) {
      this.options.warn?.(`could not record a server event for run ${runId}`, err);
    }
  }

  async getRun(runId: string): Promise<{ run: RunRecord; tasks: TaskView[]; runLog: TaskView; serverEvents: TaskView }> {
    const run = this.open.get(runId)?.record ?? (await this.meta.getRun(runId));
    if (!run) throw notFound(`run ${runId} not found`);
    const tasks = await this.meta.listTasks(runId);
    const view = async (name: string): Promise<TaskView> => ({ name, state: await this.registry.load(taskKey(runId, name)) });
    return {
      run,
      tasks: await Promise.all(tasks.map((t) => view(t.name))),
      runLog: await view(RUN_LOG_TASK),
      serverEvents: await view(SERVER_EVENTS_TASK),
    };
  }

  /** Whether a run exists (cheap for open runs). */
  async hasRun(runId: string): Promise<boolean> {
    return this.open.has(runId) || (await this.meta.getRun(runId)) !== undefined;
  }

  /** A change to one run that writes the metadata store and the log store: serialized per run, and inside the write gate. */
  private lockedWrite<T>(runId: string, fn: () => Promise<T>): Promise<T> {
    return this.lock.run(runId, () => this.writes.shared(fn));
  }

  private runLogKey(run: OpenRun): TaskKey {
    return taskKey(run.record.runId, RUN_LOG_TASK);
  }

  private async openRun(ref: TaskRefInput): Promise<OpenRun> {
    const cached = this.open.get(ref.runId);
    const record = cached?.record ?? (await this.meta.getRun(ref.runId));
    if (record) {
      if (record.state === "completed") throw failedPrecondition(`run ${ref.runId} is already completed; it takes no more tasks or lines`);
      if (ref.workspace && ref.workspace !== record.workspace) {
        throw failedPrecondition(`run ${ref.runId} belongs to workspace ${record.workspace}, not ${ref.workspace}`);
      }
      if (ref.workflow && ref.workflow !== record.workflow) {
        throw failedPrecondition(`run ${ref.runId} runs workflow ${record.workflow}, not ${ref.workflow}`);
      }
      if (cached) return cached;
      // Known to the store but not in memory: a completed run (handled above) or a race with start().
      return this.loadOpenRun(record);
    }
    if (await this.options.runIdTaken?.(ref.runId)) {
      throw alreadyExists(`run id ${ref.runId} is taken by a legacy log (log_storage.local_dir); choose another run id`);
    }
    const workspace = ref.workspace || DEFAULT_NAME;
    await this.options.createRunKey?.(ref.runId, workspace);
    const now = this.now();
    const created: RunRecord = {
      runId: ref.runId,
      workspace,
      workflow: ref.workflow || DEFAULT_NAME,
      state: "running",
      startedAt: now,
      taskCount: 0,
    };
    await this.meta.write(this.meta.createRunOps(created), this.options.sync);
    const early = this.earlyEvents.get(ref.runId);
    const runLogKey = taskKey(ref.runId, RUN_LOG_TASK);
    const serverKey = taskKey(ref.runId, SERVER_EVENTS_TASK);
    await this.queue.run([runLogKey, serverKey], (ctx) => {
      const fresh = !ctx.state(runLogKey);
      createLog(ctx, runLogKey, now);
      createLog(ctx, serverKey, now);
      if (fresh) {
        appendLeaderRecords(
          ctx,
          runLogKey,
          [{ stream: "stdout", line: `run ${ref.runId} started (workspace ${created.workspace}, workflow ${created.workflow})` }],
          now,
        );
        if (early) appendLeaderRecords(ctx, serverKey, [{ stream: "stderr", line: early }], now);
      }
    });
    this.earlyEvents.delete(ref.runId);
    const run: OpenRun = { record: created, tasks: new Map(), lastActivity: now };
    this.open.set(ref.runId, run);
    return run;
  }

  private async anyTaskFailed(runId: string, names: string[]): Promise<boolean> {
    for (const name of names) {
      const state = await this.registry.load(taskKey(runId, name));
      if (state?.completion?.result === "failed") return true;
    }
    return false;
  }
}

function completedRecord(record: RunRecord, completion: { result: RunResult; endedAt: number }): RunRecord {
  return { ...record, state: "completed", result: completion.result, endedAt: completion.endedAt };
}
