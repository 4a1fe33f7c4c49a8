import { identifierProblem, isReservedTask, RUN_LOG_TASK } from "../ids/identifiers.js";
import type { KvOp, KvStore } from "../store/kv-store.js";
import type { LogStore } from "../store/log-store.js";
import type { MetaStore, RunRecord } from "../store/meta-store.js";
import type { TaskLogState } from "../store/task-log-state.js";
import type { ArchiveBackend } from "./archive-backend.js";
import { runKeyBase } from "./archive-key.js";
import type { ArchiveLedger } from "./archive-ledger.js";
import { decodeRunIndex, type RunIndex } from "./run-index.js";

const INDEX_SUFFIX = ".index.json";
/** `YYYY-MM-DDTHH-MM-SS_` before the run id in a key's last segment (archive-key.ts). */
const STAMP_LENGTH = 20;
const PROGRESS_EVERY_MS = 5_000;

export interface ReindexDeps {
  backend: ArchiveBackend;
  prefix: string;
  ledger: ArchiveLedger;
  meta: MetaStore;
  store: LogStore;
  logKv: KvStore;
  sync: boolean;
  log(message: string, err?: unknown): void;
}

export interface ReindexReport {
  /** Run indexes found under the prefix. */
  indexes: number;
  /** Runs this leader did not know and now serves from the archive. */
  adopted: number;
  /** Objects that are not a run this leader can adopt (foreign, corrupted, inconsistent), each logged by key. */
  skipped: number;
}

/**
 * Rebuilds what a leader needs to list and serve archived runs from the archive
 * alone: a run's index (written with its final object) holds its workspace,
 * workflow, start, and every task's length, records, completion and gzip members;
 * the run's own completion is its run log's. For each index of a run the leader's
 * store does not know, it writes the run and task records, the tasks' states
 * (archived, so reads go to the archive) and the ledger entry (done) — what the
 * leader that archived the run kept. Known runs cost nothing but the listing (the
 * run id is in the key), so it runs at every start: a leader on an empty data
 * directory serves the archive without anyone running a command.
 */
export async function reindexArchive(deps: ReindexDeps, signal: AbortSignal): Promise<ReindexReport> {
  const report: ReindexReport = { indexes: 0, adopted: 0, skipped: 0 };
  let progressAt = Date.now();
  for await (const key of deps.backend.list(deps.prefix)) {
    if (signal.aborted) break;
    if (!key.endsWith(INDEX_SUFFIX)) continue;
    report.indexes++;
    const base = key.slice(0, -INDEX_SUFFIX.length);
    const runId = base.slice(base.lastIndexOf("/") + 1 + STAMP_LENGTH);
    if (identifierProblem("run_id", runId) !== undefined) {
      report.skipped++;
      deps.log(`archive reindex: ${key} is not a joblog run index (no run id in its key); skipped`);
      continue;
    }
    if (await deps.meta.getRun(runId)) continue;
    try {
      const problem = await adopt(deps, key, base, runId);
      if (problem === undefined) report.adopted++;
      else {
        report.skipped++;
        deps.log(`archive reindex: ${key} ${problem}; skipped`);
      }
    } catch (err) {
      report.skipped++;
      deps.log(`archive reindex: ${key} could not be adopted; skipped`, err);
    }
    if (Date.now() - progressAt >= PROGRESS_EVERY_MS) {
      progressAt = Date.now();
      deps.log(`archive reindex: ${report.indexes} run indexes seen, ${report.adopted} runs adopted, ${report.skipped} skipped so far`);
    }
  }
  return report;
}

/** Adopts one run from its index; returns why not when the object is not one this leader can serve. */
async function adopt(deps: ReindexDeps, key: string, base: string, runId: string): Promise<string | undefined> {
  const bytes = await deps.backend.get(key);
  if (bytes === undefined) return "vanished while the archive was listed";
  let index: RunIndex;
  try {
    index = decodeRunIndex(bytes, key);
  } catch (err) {
    return `is not a joblog run index (${err instanceof Error ? err.message : String(err)})`;
  }
  const problem = inconsistency(deps.prefix, index, base, runId);
  if (problem) return problem;

  const runLog = index.tasks.find((t) => t.task === RUN_LOG_TASK);
  const tasks = index.tasks.filter((t) => !isReservedTask(t.task));
  const run: RunRecord = {
    runId,
    workspace: index.workspace,
    workflow: index.workflow,
    // A run's object is written once it is complete; its completion is its run log's (as the directory has it).
    state: "completed",
    ...(runLog?.completion && { result: runLog.completion.result, endedAt: runLog.completion.endedAt }),
    startedAt: Date.parse(index.startedAt),
    taskCount: tasks.length,
  };
  const states: KvOp[] = index.tasks.map((t) => {
    const state: TaskLogState = {
      seq: t.seq ?? 0,
      length: t.length,
      records: t.records,
      startedAt: t.startedAt,
      ...(t.completion && { completion: t.completion }),
      ...(t.retainedFrom !== undefined && { retainedFrom: t.retainedFrom }),
      archived: true,
    };
    return deps.store.stateOp(runId, t.task, state);
  });
  // States and ledger first, the run record last: a run is known (and skipped next time) only once all of it is written.
  await deps.logKv.write(states, deps.sync);
  await deps.ledger.setRun({ runId, base, phase: "done" });
  await deps.meta.write(
    [
      ...deps.meta.createRunOps(run),
      ...deps.meta.updateRunOps(run),
      ...tasks.map((t, order) => deps.meta.addTaskOp(runId, { name: t.task, openedAt: t.openedAt ?? t.startedAt, order })),
    ],
    deps.sync,
  );
  return undefined;
}

/** Why an index cannot be served as the run its key names, or undefined when it can. */
function inconsistency(prefix: string, index: RunIndex, base: string, runId: string): string | undefined {
  if (index.runId !== runId) return `names run ${JSON.stringify(index.runId)}, not the run ${runId} of its key`;
  for (const [field, value] of [
    ["workspace", index.workspace],
    ["workflow", index.workflow],
  ] as const) {
    const problem = identifierProblem(field, value);
    if (problem) return `has a bad ${field}: ${problem}`;
  }
  const startedAt = Date.parse(index.startedAt);
  if (Number.isNaN(startedAt)) return "has no valid start time";
  if (runKeyBase(prefix, { runId, workspace: index.workspace, workflow: index.workflow, startedAt }) !== base) {
    return "does not lie where its run's workspace, workflow and start put it";
  }
  const names = new Set<string>();
  for (const t of index.tasks) {
    if (identifierProblem("task", t.task) || names.has(t.task)) return `has a bad or repeated task name ${JSON.stringify(t.task)}`;
    names.add(t.task);
    if (!Number.isSafeInteger(t.length) || t.length < 0 || !Array.isArray(t.members)) return `has a malformed entry for task ${t.task}`;
  }
  if (!names.has(RUN_LOG_TASK)) return "has no run log";
  return undefined;
}
