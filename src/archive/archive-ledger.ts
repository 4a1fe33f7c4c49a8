import type { KvStore } from "../store/kv-store.js";
import { archivedRunKey, archivePendingKey, archivePendingRange, archiveSegmentKey, archiveSegmentRange } from "../store/log-keys.js";
import type { MemberTable } from "./gzip-members.js";

/**
 * What the leader knows it has put in the archive, kept in the log store: per run,
 * where its objects live and how far its archive has got; per task, every segment
 * that was uploaded and verified. It is written only after verification, so a
 * task's buffer is dropped only for bytes recorded here, and a restarted leader
 * resumes each task from its last verified offset.
 */

export type ArchivePhase =
  /** Segments are being uploaded; reads of dropped tasks use them. */
  | "segments"
  /** The run's object and index are verified; segments and the run's own buffers are being cleaned up. */
  | "final"
  /** Nothing left to do. */
  | "done";

export interface ArchivedRun {
  runId: string;
  /** Key base of the run's objects, fixed when its archive began (a later prefix change does not move it). */
  base: string;
  phase: ArchivePhase;
  /** When the current outage began: set with its one server event, cleared when an upload works again. */
  failingSince?: number;
}

export interface Segment {
  task: string;
  key: string;
  size: number;
  md5: string;
  members: MemberTable;
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const parse = <T>(value: Buffer) => JSON.parse(value.toString("utf8")) as T;

export class ArchiveLedger {
  constructor(
    private readonly kv: KvStore,
    private readonly sync: boolean,
  ) {}

  async run(runId: string): Promise<ArchivedRun | undefined> {
    const value = await this.kv.get(archivedRunKey(runId));
    return value === undefined ? undefined : parse<ArchivedRun>(value);
  }

  /** Records a run's phase; a run is pending (resumed after a restart) until it is done. */
  async setRun(run: ArchivedRun): Promise<void> {
    const pending = archivePendingKey(run.runId);
    await this.kv.write(
      [
        { type: "put", key: archivedRunKey(run.runId), value: json(run) },
        run.phase === "done" ? { type: "del", key: pending } : { type: "put", key: pending, value: Buffer.alloc(0) },
      ],
      this.sync,
    );
  }

  async pendingRunIds(): Promise<string[]> {
    const ids: string[] = [];
    for await (const [key] of this.kv.entries(archivePendingRange, 256)) ids.push(key.toString("latin1", 1));
    return ids;
  }

  async addSegment(runId: string, segment: Segment): Promise<void> {
    await this.kv.write(
      [{ type: "put", key: archiveSegmentKey(runId, segment.task, segment.members.plain[0] ?? 0), value: json(segment) }],
      this.sync,
    );
  }

  /** The segments of a task in offset order. */
  async segments(runId: string, task: string): Promise<Segment[]> {
    const out: Segment[] = [];
    for await (const [, value] of this.kv.entries(archiveSegmentRange(runId, task))) out.push(parse<Segment>(value));
    return out;
  }

  /** The segment holding `offset`: one seek, like a chunk read. */
  async segmentAt(runId: string, task: string, offset: number): Promise<Segment | undefined> {
    const range = archiveSegmentRange(runId, task);
    const floor = await this.kv.first({ gte: range.gte, lte: archiveSegmentKey(runId, task, offset), reverse: true });
    return floor === undefined ? undefined : parse<Segment>(floor[1]);
  }

  /** How many bytes of the task are verified in the archive. */
  async archivedLength(runId: string, task: string): Promise<number> {
    const range = archiveSegmentRange(runId, task);
    const last = await this.kv.first({ ...range, reverse: true });
    return last === undefined ? 0 : parse<Segment>(last[1]).members.plainEnd;
  }

  /** Forgets everything about a deleted run: its record, its pending mark and its segments. */
  async forgetRun(runId: string): Promise<void> {
    await this.dropSegments(runId);
    await this.kv.write(
      [
        { type: "del", key: archivedRunKey(runId) },
        { type: "del", key: archivePendingKey(runId) },
      ],
      this.sync,
    );
  }

  /** Forgets a run's segments: once its object is final, they are neither read nor kept. */
  async dropSegments(runId: string): Promise<void> {
    const range = archiveSegmentRange(runId);
    await this.kv.deleteRange(range.gte, range.lt);
  }
}
