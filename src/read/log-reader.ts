import type { ArchiveTier } from "../archive/archive-tier.js";
import { invalidArgument, notFound } from "../errors/domain-error.js";
import { RUN_LOG_TASK } from "../ids/identifiers.js";
import { type TaskKey, type TaskRegistry, taskKey } from "../ingest/task-registry.js";
import type { RunDirectory } from "../runs/run-directory.js";
import type { LogSlice, LogStore } from "../store/log-store.js";
import type { TaskLogState } from "../store/task-log-state.js";
import type { TailHub } from "../tail/tail-hub.js";
import { droppedMarker, firstRecordTime } from "./dropped-marker.js";
import type { LegacyLogs } from "./legacy-log.js";

export interface LogRead {
  offset: number;
  data: Buffer;
  nextOffset: number;
  length: number;
  complete: boolean;
}

/** Where a log's bytes are: the leader's store, a legacy plain-text file, or the archive. */
export type LogTier = "buffer" | "legacy" | "archive";

/** A log found by `state()`: what `readAt()` reads from. */
export interface FoundLog {
  key: TaskKey;
  run: string;
  task: string;
  state: TaskLogState;
  tier: LogTier;
}

/** The tiers behind the store; each is optional (no archive, no legacy directory configured). */
export interface ReadTiers {
  legacy?: LegacyLogs | undefined;
  archive?: ArchiveTier | undefined;
}

/**
 * Reads task logs at an offset, from whichever tier holds them — in order, the
 * RocksDB buffer (the hub's cache of recent bytes first), a legacy plain-text log
 * (as task `_run` of a run id joblog does not know), the archive — with the same
 * answer whichever it is. A run joblog knows is never shadowed by a legacy file:
 * once archived, its state sends reads to the archive.
 */
export class LogReader {
  constructor(
    private readonly registry: TaskRegistry,
    private readonly store: LogStore,
    private readonly directory: RunDirectory,
    private readonly hub: TailHub,
    private readonly tiers: ReadTiers = {},
  ) {}

  /** The state of a task log and its tier; NOT_FOUND naming the run or the task when there is none. */
  async state(run: string, task: string): Promise<FoundLog> {
    const key = taskKey(run, task);
    const state = await this.registry.load(key);
    if (state) return { key, run, task, state, tier: state.archived ? "archive" : "buffer" };
    const { legacy, archive } = this.tiers;
    let known: boolean | undefined;
    // A legacy file is only ever a run log, and only of a run id joblog does not know: a run of the
    // same id (created before the file appeared; new ones are refused) shadows it for good.
    if (legacy && task === RUN_LOG_TASK) {
      known = await this.directory.hasRun(run);
      const legacyState = known ? undefined : await legacy.state(run);
      if (legacyState) return { key, run, task, state: legacyState, tier: "legacy" };
    }
    const archived = await archive?.state(run, task);
    if (archived) return { key, run, task, state: archived, tier: "archive" };
    if (known ?? (await this.directory.hasRun(run))) throw notFound(`task ${task} not found in run ${run}`);
    if (legacy && (await legacy.has(run))) {
      throw notFound(`task ${task} not found in run ${run}: a legacy log holds only the run log, task ${RUN_LOG_TASK}`);
    }
    throw notFound(`run ${run} not found`);
  }

  /** The state the registry holds for a found log now, without a read; undefined when it must be loaded (state()). */
  cachedState(found: FoundLog): TaskLogState | undefined {
    return found.tier === "legacy" ? undefined : this.registry.peek(found.key);
  }

  async read(run: string, task: string, offset: number, maxBytes: number): Promise<LogRead> {
    return this.readAt(await this.state(run, task), offset, maxBytes);
  }

  /** Reads from a known state, so a tail sees the length and completion that go with the bytes. */
  async readAt(found: FoundLog, offset: number, maxBytes: number): Promise<LogRead> {
    const { run, task, state } = found;
    if (offset > state.length) {
      throw invalidArgument(`offset ${offset} is past the end of task ${task} of run ${run} (length ${state.length})`);
    }
    const complete = state.completion !== undefined;
    const retainedFrom = state.retainedFrom ?? 0;
    if (offset < retainedFrom) {
      // The range was dropped under the size cap: one marker record, ending where the retained log begins, then the log.
      const rest = await this.slice(found, retainedFrom, maxBytes);
      const marker = droppedMarker(task, retainedFrom, firstRecordTime(rest.data) ?? state.startedAt);
      const start = retainedFrom - marker.length;
      if (offset <= start) {
        const data = Buffer.concat([marker, rest.data]);
        return { offset: start, data, nextOffset: rest.offset + rest.data.length, length: state.length, complete };
      }
      // An offset inside the marker starts at the next record, as inside any record.
      return { offset: rest.offset, data: rest.data, nextOffset: rest.offset + rest.data.length, length: state.length, complete };
    }
    const slice = await this.slice(found, offset, maxBytes);
    return { offset: slice.offset, data: slice.data, nextOffset: slice.offset + slice.data.length, length: state.length, complete };
  }

  private async slice(found: FoundLog, offset: number, maxBytes: number): Promise<LogSlice> {
    const { key, run, task, state } = found;
    if (found.tier === "legacy" && this.tiers.legacy) return this.tiers.legacy.read(run, offset, state.length, maxBytes);
    const cached = this.hub.cached(key, offset, maxBytes);
    if (cached) return { offset, data: cached };
    if (!state.archived) {
      const slice = await this.store.read(run, task, offset, state.length, maxBytes);
      if (slice.data.length > 0 || offset >= state.length) return slice;
      // Nothing where the state says there are bytes: the buffer was dropped after the state was read.
      const latest = await this.registry.load(key);
      if (!latest?.archived) return slice;
    }
    if (!this.tiers.archive) throw new Error(`task ${task} of run ${run} is archived, but no archive is configured`);
    return this.tiers.archive.read(run, task, offset, state.length, maxBytes);
  }
}
