import { createHash } from "node:crypto";
import type { RunRecord } from "../store/meta-store.js";
import type { TaskLogState } from "../store/task-log-state.js";
import type { ArchiveBackend } from "./archive-backend.js";
import { ArchiveVerifyError } from "./archive-backend.js";
import { runIndexKey, runObjectKey } from "./archive-key.js";
import type { Segment } from "./archive-ledger.js";
import { joinTables, shiftTable } from "./gzip-members.js";
import { COPY_STEP_RETRY, withRetry } from "./request-retry.js";
import { encodeRunIndex, type IndexedTask, membersOf, type RunIndex } from "./run-index.js";

export interface ArchivedTaskLog {
  task: string;
  state: TaskLogState;
  /** When the task was opened (absent for the run log and server events). */
  openedAt?: number;
  /** Its verified segments, in offset order, covering [0, state.length). */
  segments: Segment[];
}

/**
 * Writes a completed run's object — every task's segments, byte for byte, one
 * after another, so the object is a series of gzip members that `zcat` turns into
 * the run's JSONL — then its index, verifying both. Segments are already gzip
 * members: nothing is compressed again, only copied.
 */
/** Segments wholly before the retained log hold bytes the size cap dropped: the run's object leaves them out. */
function retainedSegments(log: ArchivedTaskLog): Segment[] {
  const retainedFrom = log.state.retainedFrom ?? 0;
  return log.segments.filter((s) => s.members.plainEnd > retainedFrom);
}

const PREFETCH_SEGMENTS = 8;
const PREFETCH_BYTES = 32 * 1024 * 1024;

/** A step of the copy, with the patience a long copy needs; a changed object or a stopping leader ends it at once. */
function copyStep<T>(fn: () => Promise<T>): Promise<T> {
  return withRetry(COPY_STEP_RETRY, fn, {
    permanent: (err) => err instanceof ArchiveVerifyError || (err instanceof Error && err.name === "AbortError"),
  });
}

async function segmentBody(backend: ArchiveBackend, segment: Segment): Promise<Buffer> {
  const body = await backend.get(segment.key);
  // Checked again on the way through: a segment changed since its upload must not reach the run's object.
  const md5 = body && createHash("md5").update(body).digest("hex");
  if (md5 !== segment.md5) throw new ArchiveVerifyError(`segment ${segment.key} is missing or changed since it was verified`);
  return body as Buffer;
}

export async function writeRunObject(backend: ArchiveBackend, base: string, run: RunRecord, logs: ArchivedTaskLog[]): Promise<RunIndex> {
  const tasks: IndexedTask[] = [];
  let position = 0;
  for (const log of logs) {
    const start = position;
    const retainedFrom = log.state.retainedFrom ?? 0;
    const segments = retainedSegments(log);
    let covered = Math.min(retainedFrom, segments[0]?.members.plain[0] ?? retainedFrom);
    const keptFrom = covered;
    let table = { plain: [] as number[], gz: [] as number[], plainEnd: 0, gzEnd: position };
    for (const segment of segments) {
      if (segment.members.plain[0] !== covered)
        throw new Error(`task ${log.task} of run ${run.runId}: archive segments leave a gap at ${covered}`);
      table = joinTables(table, shiftTable(segment.members, position));
      position += segment.size;
      covered = segment.members.plainEnd;
    }
    if (covered !== log.state.length)
      throw new Error(`task ${log.task} of run ${run.runId}: ${covered} of ${log.state.length} bytes archived`);
    tasks.push({
      task: log.task,
      length: log.state.length,
      records: log.state.records,
      startedAt: log.state.startedAt,
      seq: log.state.seq,
      ...(log.openedAt !== undefined && { openedAt: log.openedAt }),
      ...(log.state.completion && { completion: log.state.completion }),
      ...(keptFrom > 0 && { retainedFrom: keptFrom }),
      gzStart: start,
      gzEnd: position,
      members: membersOf(table),
    });
  }

  async function* pieces(): AsyncGenerator<Buffer> {
    // Segments are fetched a few ahead: one at a time, a run of hundreds of segments
    // spends minutes on request latency alone.
    const all = logs.flatMap(retainedSegments);
    const ahead: Array<{ segment: Segment; body: Promise<Buffer> }> = [];
    let aheadBytes = 0;
    let next = 0;
    while (next < all.length || ahead.length > 0) {
      while (next < all.length && ahead.length < PREFETCH_SEGMENTS) {
        const segment = all[next] as Segment;
        if (ahead.length > 0 && aheadBytes + segment.size > PREFETCH_BYTES) break;
        const body = copyStep(() => segmentBody(backend, segment));
        body.catch(() => undefined); // awaited in order below; a copy given up leaves the rest to settle unread
        ahead.push({ segment, body });
        aheadBytes += segment.size;
        next++;
      }
      const head = ahead.shift() as { segment: Segment; body: Promise<Buffer> };
      aheadBytes -= head.segment.size;
      yield await head.body;
    }
  }
  const objectKey = runObjectKey(base);
  const digest = await backend.putStream(objectKey, pieces());
  if (digest.size !== position) throw new ArchiveVerifyError(`${objectKey}: wrote ${digest.size} bytes, expected ${position}`);
  await copyStep(() => backend.verify(objectKey, digest));

  const index: RunIndex = {
    version: 1,
    runId: run.runId,
    workspace: run.workspace,
    workflow: run.workflow,
    startedAt: new Date(run.startedAt).toISOString(),
    size: position,
    tasks,
  };
  const indexKey = runIndexKey(base);
  const indexBody = encodeRunIndex(index);
  await copyStep(async () => backend.verify(indexKey, await backend.put(indexKey, indexBody)));
  return index;
}
