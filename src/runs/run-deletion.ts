import type { Archive } from "../archive/open-archive.js";
import { DomainError, unavailable } from "../errors/domain-error.js";
import { RUN_LOG_TASK, SERVER_EVENTS_TASK } from "../ids/identifiers.js";
import { type TaskRegistry, taskKey } from "../ingest/task-registry.js";
import type { RunKeys } from "../keys/run-keys.js";
import type { LogStore } from "../store/log-store.js";
import type { MetaStore, RunRecord } from "../store/meta-store.js";
import type { RunDirectory } from "./run-directory.js";

export interface RunDeletionDeps {
  directory: RunDirectory;
  meta: MetaStore;
  store: LogStore;
  registry: TaskRegistry;
  keys: RunKeys;
  archive?: Archive | undefined;
  sync: boolean;
  log: (message: string, err?: unknown) => void;
}

/** What a deletion removed. */
export interface DeletedRun {
  /** Task logs, `_run` and `_server` included. */
  tasks: number;
  archiveObjects: number;
}

/**
 * Deletes completed runs for good. In order: the archive's objects and ledger
 * records, the run's data keys (what is left of its chunks can no longer be
 * decrypted from here on), its chunks and task states, and last its metadata
 * records — so a run stays listed, and deletable again, until everything else
 * is gone, and a deletion cut short by a crash or an archive outage is
 * finished by asking again.
 */
export class RunDeletion {
  constructor(private readonly deps: RunDeletionDeps) {}

  /** Deletes a completed run; NOT_FOUND / FAILED_PRECONDITION (still running) / UNAVAILABLE (archive). */
  delete(runId: string): Promise<DeletedRun> {
    return this.deps.directory.withCompletedRun(runId, (record) => this.deleteCompleted(record));
  }

  private async deleteCompleted(record: RunRecord): Promise<DeletedRun> {
    const { deps } = this;
    const runId = record.runId;
    const tasks = await deps.meta.listTasks(runId);
    const names = [...tasks.map((t) => t.name), RUN_LOG_TASK, SERVER_EVENTS_TASK];
    let archiveObjects = 0;
    let deleted = false;
    await deps.archive?.flusher.hold(runId);
    try {
      if (deps.archive) archiveObjects = await this.deleteFromArchive(deps.archive, record);
      await deps.keys.deleteRun(runId);
      await deps.store.deleteTasks(runId, names, deps.sync);
      for (const name of names) deps.registry.forget(taskKey(runId, name));
      await deps.meta.write(deps.meta.deleteRunOps(record, tasks), deps.sync);
      deleted = true;
    } finally {
      deps.archive?.flusher.release(runId, deleted);
    }
    // Ids only: never anything from the logs.
    deps.log(`deleted run ${runId}: ${names.length} task logs, ${archiveObjects} archive objects`);
    return { tasks: names.length, archiveObjects };
  }

  private async deleteFromArchive(archive: Archive, record: RunRecord): Promise<number> {
    try {
      return await archive.deleteRun(record);
    } catch (err) {
      if (err instanceof DomainError) throw err;
      this.deps.log(`deleting the archive objects of run ${record.runId} failed`, err);
      throw unavailable(
        `the archive objects of run ${record.runId} cannot be deleted right now; nothing of the run was removed from the leader's store — delete it again later`,
      );
    }
  }
}
