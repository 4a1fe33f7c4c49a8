import { Code, ConnectError } from "@connectrpc/connect";
import { TaskState } from "../../../gen/joblog/v1/log_pb.js";
import type { LeaderClient } from "../leader-client.js";

/**
 * What the browser holds of one task log. It opens at the end (tail-first),
 * follows new records with Tail from the offset it holds, and loads other
 * parts only when the view asks for lines it does not have. Lines are held in
 * blocks, each a contiguous run of records with its first line number and
 * byte range, so a jump to line 10 of a million-line log loads a block there
 * without loading what lies between.
 *
 * Line numbers come from the leader: GetRun gives the length and record count
 * of the same state, so the record that ends at that length is that line;
 * Search and LocateLine give a line's number with its offset.
 */

export interface LogRecord {
  ts: string;
  stream: "stdout" | "stderr";
  line: string;
}

interface Block {
  firstLine: number;
  /** Byte offset of the first record. */
  start: number;
  /** Byte offset just after the last record. */
  end: number;
  records: LogRecord[];
}

export type LogStatus = "opening" | "live" | "paused" | "reconnecting" | "complete" | "failed";

/** Bytes asked for per Read. */
const READ_BYTES = 256 * 1024;
/** A missing line this close to a loaded block is loaded by extending the block; farther, by LocateLine. */
const NEAR_LINES = 3000;
/** New records join the last block until it holds this many. */
const TAIL_BLOCK_RECORDS = 4096;
/** Loads per burst before the model yields to the view again. */
const LOADS_PER_PUMP = 64;
const NEWLINE = 0x0a;

const decoder = new TextDecoder();

/** Parses whole records starting at `offset`, keeping those that end by `limit`. */
function parseRecords(data: Uint8Array, offset: number, limit: number): { records: LogRecord[]; end: number } {
  const records: LogRecord[] = [];
  let pos = 0;
  while (pos < data.length) {
    let nl = data.indexOf(NEWLINE, pos);
    if (nl < 0) nl = data.length;
    if (offset + nl + 1 > limit) break;
    const r = JSON.parse(decoder.decode(data.subarray(pos, nl))) as { ts: string; stream: string; line: string };
    records.push({ ts: r.ts, stream: r.stream === "stderr" ? "stderr" : "stdout", line: r.line });
    pos = nl + 1;
  }
  return { records, end: offset + pos };
}

/** Errors worth retrying the tail for: the leader restarting, the network. */
function retryable(err: unknown): boolean {
  if (!(err instanceof ConnectError)) return true;
  return ![Code.NotFound, Code.InvalidArgument, Code.PermissionDenied, Code.Unauthenticated, Code.FailedPrecondition].includes(err.code);
}

function messageOf(err: unknown): string {
  return err instanceof ConnectError ? err.rawMessage : err instanceof Error ? err.message : String(err);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

export class LogModel {
  /** The last line's number: how many lines the view shows. */
  total = 0;
  /** Byte length held: the tail continues from here. */
  endOffset = 0;
  status: LogStatus = "opening";
  error: string | undefined;
  /** Bumped on every change, for useSyncExternalStore. */
  version = 0;

  private blocks: Block[] = [];
  private readonly listeners = new Set<() => void>();
  private readonly disposed = new AbortController();
  private tail: AbortController | undefined;
  private live = true;
  private complete = false;
  private wanted: [number, number] | undefined;
  private anchors: Array<{ line: number; offset: number }> = [];
  private pumping = false;

  constructor(
    private readonly client: LeaderClient,
    readonly runId: string,
    readonly task: string,
  ) {}

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getVersion = (): number => this.version;

  /** The record of line `n` (from 1), when it is loaded. */
  record(n: number): LogRecord | undefined {
    const block = this.blockAtOrBefore(n);
    if (!block) return undefined;
    return block.records[n - block.firstLine];
  }

  /** Opens the log at its end and, when live, starts following it. */
  async open(): Promise<void> {
    const signal = this.disposed.signal;
    try {
      const view = await this.client.getRun({ runId: this.runId }, { signal });
      const task =
        this.task === "_run" ? view.runLog : this.task === "_server" ? view.serverEvents : view.tasks.find((t) => t.name === this.task);
      if (!task) throw new Error(`task ${this.task} not found in run ${this.runId}`);
      const length = Number(task.length);
      const records = Number(task.recordCount);
      if (length > 0) this.insert(await this.readBefore(length, 0, records + 1));
      this.endOffset = length;
      this.total = records;
      this.complete = task.state === TaskState.COMPLETED;
      this.status = this.live ? "live" : "paused";
      this.changed();
      if (this.live) this.startTail();
    } catch (err) {
      this.fail(err);
    }
  }

  dispose(): void {
    this.disposed.abort();
    this.tail?.abort();
  }

  /** Live: follow new records. Paused: nothing new arrives; resuming continues from the held offset. */
  setLive(live: boolean): void {
    this.live = live;
    if (this.status === "opening" || this.status === "failed") return;
    if (live) this.startTail();
    else {
      this.tail?.abort();
      this.tail = undefined;
      if (this.status !== "complete") this.status = "paused";
    }
    this.changed();
  }

  isLive(): boolean {
    return this.live;
  }

  /** The view shows lines `from`–`to`: load what is missing there. */
  want(from: number, to: number): void {
    this.wanted = [Math.max(1, from), Math.min(this.total, to)];
    void this.pump();
  }

  /** Line `line` starts at `offset` (from Search): load it from there rather than looking it up. */
  anchor(line: number, offset: number): void {
    if (this.record(line)) return;
    this.anchors.push({ line, offset });
    void this.pump();
  }

  private changed(): void {
    this.version++;
    for (const listener of this.listeners) listener();
  }

  private fail(err: unknown): void {
    if (this.disposed.signal.aborted) return;
    this.status = "failed";
    this.error = messageOf(err);
    this.changed();
  }

  private startTail(): void {
    if (this.complete) {
      this.status = "complete";
      return;
    }
    if (this.tail) return;
    const tail = new AbortController();
    this.tail = tail;
    this.status = "live";
    void this.follow(tail.signal);
  }

  private async follow(signal: AbortSignal): Promise<void> {
    for (let attempt = 0; !signal.aborted; ) {
      try {
        const responses = this.client.tail({ runId: this.runId, task: this.task, offset: BigInt(this.endOffset) }, { signal });
        for await (const r of responses) {
          attempt = 0;
          if (this.status === "reconnecting") this.status = "live";
          if (r.data.length > 0) this.append(r.data, Number(r.offset));
          if (r.complete) {
            this.complete = true;
            this.status = "complete";
            this.tail = undefined;
            this.changed();
            return;
          }
        }
        // Ended without `complete` (a proxy cut it): continue from the held offset after a pause.
        await sleep(Math.min(10_000, 250 * 2 ** attempt++), signal);
      } catch (err) {
        if (signal.aborted) return;
        if (!retryable(err)) {
          this.tail = undefined;
          this.fail(err);
          return;
        }
        this.status = "reconnecting";
        this.changed();
        await sleep(Math.min(10_000, 250 * 2 ** attempt++), signal);
      }
    }
  }

  private append(data: Uint8Array, offset: number): void {
    // The tail starts where the model ends and sends contiguous whole records.
    if (offset !== this.endOffset) throw new Error(`tail sent offset ${offset}, expected ${this.endOffset}`);
    const { records, end } = parseRecords(data, offset, Number.POSITIVE_INFINITY);
    const last = this.blocks.at(-1);
    if (last && last.end === offset && last.records.length + records.length <= TAIL_BLOCK_RECORDS) {
      for (const r of records) last.records.push(r);
      last.end = end;
    } else {
      this.blocks.push({ firstLine: this.total + 1, start: offset, end, records });
    }
    this.total += records.length;
    this.endOffset = end;
    this.changed();
  }

  private blockIndexAtOrBefore(line: number): number {
    let lo = 0;
    let hi = this.blocks.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((this.blocks[mid] as Block).firstLine <= line) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  private blockAtOrBefore(line: number): Block | undefined {
    return this.blocks[this.blockIndexAtOrBefore(line)];
  }

  private insert(block: Block | undefined): void {
    if (!block || block.records.length === 0) return;
    const at = this.blockIndexAtOrBefore(block.firstLine) + 1;
    this.blocks.splice(at, 0, block);
  }

  /** Records ending exactly at `end`, starting no earlier than `floor` (a record boundary); the last is line `nextLine - 1`. */
  private async readBefore(end: number, floor: number, nextLine: number): Promise<Block | undefined> {
    let window = Math.min(READ_BYTES, end - floor);
    for (;;) {
      const from = end - window;
      const r = await this.client.read(
        { runId: this.runId, task: this.task, offset: BigInt(from), maxBytes: window },
        { signal: this.disposed.signal },
      );
      const start = Number(r.offset);
      const { records, end: reached } = parseRecords(r.data, start, end);
      if (records.length > 0 && reached === end) return { firstLine: nextLine - records.length, start, end, records };
      // One record longer than the window: widen it (from the floor, a boundary, a read always finds one).
      if (from === floor) return undefined;
      window = Math.min(window * 4, end - floor);
    }
  }

  /** Records from `start` (a record boundary, line `firstLine`) up to `limit`. */
  private async readAfter(start: number, limit: number, firstLine: number): Promise<Block> {
    const r = await this.client.read(
      { runId: this.runId, task: this.task, offset: BigInt(start), maxBytes: Math.max(1, Math.min(READ_BYTES, limit - start)) },
      { signal: this.disposed.signal },
    );
    const { records, end } = parseRecords(r.data, Number(r.offset), limit);
    return { firstLine, start: Number(r.offset), end, records };
  }

  private firstMissing(from: number, to: number): number | undefined {
    for (let n = from; n <= to; ) {
      const block = this.blockAtOrBefore(n);
      if (block && n < block.firstLine + block.records.length) {
        n = block.firstLine + block.records.length;
        continue;
      }
      return n;
    }
    return undefined;
  }

  /** Loads the lines around `line`, which is not loaded, into a new block. */
  private async loadAround(line: number): Promise<void> {
    const index = this.blockIndexAtOrBefore(line);
    const prev = this.blocks[index];
    const next = this.blocks[index + 1];
    const prevLast = prev ? prev.firstLine + prev.records.length - 1 : 0;
    const gapStart = prev ? prev.end : 0;
    const gapEnd = next ? next.start : this.endOffset;
    if (next && next.firstLine - line <= NEAR_LINES) {
      this.insert(await this.readBefore(next.start, gapStart, next.firstLine));
    } else if (line - prevLast <= NEAR_LINES) {
      this.insert(await this.readAfter(gapStart, gapEnd, prevLast + 1));
    } else {
      // Far from anything loaded (a jump, a dragged scrollbar): ask where a line a little above it starts.
      const target = Math.max(prevLast + 1, line - 100);
      const located = await this.client.locateLine(
        { runId: this.runId, task: this.task, lineNumber: BigInt(target) },
        { signal: this.disposed.signal },
      );
      this.insert(await this.readAfter(Number(located.offset), gapEnd, target));
    }
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (let i = 0; i < LOADS_PER_PUMP && !this.disposed.signal.aborted; i++) {
        const anchor = this.anchors.shift();
        if (anchor) {
          if (this.record(anchor.line)) continue;
          const index = this.blockIndexAtOrBefore(anchor.line);
          const next = this.blocks[index + 1];
          this.insert(await this.readAfter(anchor.offset, next ? next.start : this.endOffset, anchor.line));
          this.changed();
          continue;
        }
        const wanted = this.wanted;
        const missing = wanted && this.firstMissing(wanted[0], wanted[1]);
        if (missing === undefined) break;
        await this.loadAround(missing);
        this.error = undefined;
        this.changed();
      }
    } catch (err) {
      // A part that failed to load stays a placeholder and is asked for again when the view next moves;
      // the tail is unaffected, so the log keeps its state and shows the problem beside it.
      if (this.disposed.signal.aborted) return;
      this.error = messageOf(err);
      this.changed();
    } finally {
      this.pumping = false;
    }
  }
}
