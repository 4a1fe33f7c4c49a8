import type { MessageInitShape } from "@bufbuild/protobuf";
import { type BatchSchema, Stream } from "../../gen/joblog/v1/log_pb.js";
import type { LineSpool } from "./line-spool.js";

interface Line {
  seq: number;
  stream: Stream;
  text: Uint8Array;
  tsMs: number;
}

export interface BatchLimits {
  maxLines: number;
  maxBytes: number;
  maxIntervalMs: number;
}

export interface OutgoingBatch {
  message: MessageInitShape<typeof BatchSchema>;
  lineCount: number;
  /** Bytes of line text. */
  bytes: number;
}

// What a held line costs beyond its text (the Line object, its Buffer, its array slot):
// counted so a flood of short lines (`seq 1 1000000`) is bounded like a few long ones.
const LINE_OVERHEAD_BYTES = 96;

export interface PendingLinesOptions {
  /** Where lines go once memory is full; backpressure starts when it is full too. */
  spool?: LineSpool;
  /**
   * Past this many held bytes (memory and spool) a line that does not fit is dropped
   * and counted, and a record saying how many were dropped is added once there is room
   * again. 0: never drop; the caller is held back instead.
   */
  dropAfterBytes?: number;
}

/**
 * A task's lines from capture until the leader holds them durably, in sequence
 * order. Each gets its sequence number when added and keeps it through every
 * resend. The byte bound is what makes the writer's backpressure: `add` reports
 * when it is reached, and `room()` resolves once acknowledgements free enough.
 */
export class PendingLines {
  private lines: Line[] = [];
  private heldBytes = 0;
  private nextSeq = 1;
  private ackedSeq = 0;
  /** Index of the first line not yet sent on the current stream. */
  private sentIndex = 0;
  private roomWaiters: Array<() => void> = [];
  private readonly spool: LineSpool | undefined;
  private readonly dropAfterBytes: number;
  /** Lines dropped since the last "lines dropped" record. */
  private dropped = 0;

  constructor(
    private readonly maxBytes: number,
    options: PendingLinesOptions = {},
  ) {
    this.spool = options.spool;
    this.dropAfterBytes = options.dropAfterBytes ?? 0;
  }

  private get spooled(): number {
    return this.spool?.lineCount ?? 0;
  }

  /** Whether `add` wants the caller to wait: memory full, and the spool too when there is one. */
  private get blocked(): boolean {
    return this.spool ? this.spool.full : this.full;
  }

  /** Sequence number of the last line the leader holds durably. */
  get durableSeq(): number {
    return this.ackedSeq;
  }

  /** Sequence number of the last line added (0: none). */
  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  get unsentCount(): number {
    return this.lines.length - this.sentIndex + this.spooled;
  }

  get allSent(): boolean {
    return this.sentIndex === this.lines.length && this.spooled === 0;
  }

  get isEmpty(): boolean {
    return this.lines.length === 0 && this.spooled === 0;
  }

  get full(): boolean {
    return this.heldBytes >= this.maxBytes;
  }

  /** Past half the bound: send what is there rather than wait for a fuller batch. */
  get underPressure(): boolean {
    return this.heldBytes >= this.maxBytes / 2;
  }

  /** Capture time of the oldest line not yet sent. */
  get oldestUnsentMs(): number | undefined {
    return this.lines[this.sentIndex]?.tsMs;
  }

  /**
   * Adds a line; false when the bound is reached: the line is kept, unless a drop
   * limit is set and reached, in which case it is counted as dropped.
   */
  add(stream: Stream, text: Uint8Array, tsMs: number): boolean {
    if (this.dropAfterBytes > 0 && this.blocked && this.heldBytes + (this.spool?.bytes ?? 0) >= this.dropAfterBytes) {
      this.dropped++;
      return false;
    }
    this.noteDropped(tsMs);
    this.keep(stream, text, tsMs);
    return !this.blocked;
  }

  /** Adds the record saying how many lines were dropped, if any were since the last one. */
  noteDropped(tsMs: number): void {
    if (this.dropped === 0) return;
    const text = Buffer.from(
      `joblog: ${this.dropped} lines dropped: the worker's buffer held ${this.dropAfterBytes} bytes the leader had not acknowledged`,
    );
    this.dropped = 0;
    this.keep(Stream.STDERR, text, tsMs);
  }

  private keep(stream: Stream, text: Uint8Array, tsMs: number): void {
    if (this.spool && (this.spool.lineCount > 0 || this.full)) {
      this.spool.append({ stream, text, tsMs });
      this.nextSeq++;
      return;
    }
    this.lines.push({ seq: this.nextSeq++, stream, text, tsMs });
    this.heldBytes += text.byteLength + LINE_OVERHEAD_BYTES;
  }

  /** Resolves when `add` takes lines without holding the caller back again. */
  room(): Promise<void> {
    if (!this.blocked) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** Removes the spool's files: the writer is done. */
  dispose(): void {
    this.spool?.remove();
  }

  /** Wakes every `room()` waiter, e.g. when the writer has failed for good. */
  releaseWaiters(): void {
    for (const resolve of this.roomWaiters.splice(0)) resolve();
  }

  /**
   * Numbers the held lines, and every later one, after `durableSeq`: what the leader
   * already holds for this task came from an earlier writer (a worker restarted on the
   * same task), so these lines follow it rather than being taken for resends of it.
   */
  startAfter(durableSeq: number): void {
    if (this.ackedSeq !== 0 || durableSeq === 0) return;
    for (const [i, line] of this.lines.entries()) line.seq = durableSeq + 1 + i;
    // Spooled lines are numbered by their place after the lines in memory.
    this.nextSeq = durableSeq + 1 + this.lines.length + this.spooled;
    this.ackedSeq = durableSeq;
  }

  /** Drops every line at or below `durableSeq`. */
  acknowledge(durableSeq: number): void {
    if (durableSeq <= this.ackedSeq) return;
    this.ackedSeq = durableSeq;
    let drop = 0;
    while (drop < this.lines.length && (this.lines[drop] as Line).seq <= durableSeq) {
      this.heldBytes -= (this.lines[drop] as Line).text.byteLength + LINE_OVERHEAD_BYTES;
      drop++;
    }
    this.lines.splice(0, drop);
    this.sentIndex = Math.max(0, this.sentIndex - drop);
    this.refill();
    if (!this.blocked) this.releaseWaiters();
  }

  /** Moves spooled lines back into memory while there is room. */
  private refill(): void {
    if (!this.spool) return;
    while (this.spool.lineCount > 0 && !this.full) {
      let seq = this.nextSeq - this.spool.lineCount;
      for (const l of this.spool.take(this.maxBytes - this.heldBytes)) {
        this.lines.push({ seq: seq++, stream: l.stream as Stream, text: l.text, tsMs: l.tsMs });
        this.heldBytes += l.text.byteLength + LINE_OVERHEAD_BYTES;
      }
    }
  }

  /** A new stream starts: everything not acknowledged is to be sent again. */
  rewind(): void {
    this.sentIndex = 0;
  }

  /**
   * The next batch if one is due — full, old enough, under pressure, or `flush` (the
   * last lines before completion) — and marks its lines sent.
   */
  takeBatch(limits: BatchLimits, flush: boolean, now: number): OutgoingBatch | undefined {
    const start = this.sentIndex;
    const oldest = this.lines[start];
    if (!oldest) return undefined;
    const due = flush || this.lines.length - start >= limits.maxLines || now - oldest.tsMs >= limits.maxIntervalMs || this.underPressure;
    let end = start;
    let bytes = 0;
    while (end < this.lines.length && end - start < limits.maxLines && bytes < limits.maxBytes) {
      bytes += (this.lines[end] as Line).text.byteLength;
      end++;
    }
    if (!due && bytes < limits.maxBytes) return undefined;
    this.sentIndex = end;
    // Sent packed (columns): the leader decodes it without an object per line.
    const text = Buffer.allocUnsafe(bytes);
    const lengths: number[] = [];
    const streams: Stream[] = [];
    const tsOffsetsMs: number[] = [];
    let stderr = false;
    let at = 0;
    for (let i = start; i < end; i++) {
      const l = this.lines[i] as Line;
      text.set(l.text, at);
      at += l.text.byteLength;
      lengths.push(l.text.byteLength);
      streams.push(l.stream);
      if (l.stream === Stream.STDERR) stderr = true;
      tsOffsetsMs.push(Math.max(0, l.tsMs - oldest.tsMs));
    }
    return {
      message: {
        firstSeq: BigInt(oldest.seq),
        baseTsUnixMs: BigInt(oldest.tsMs),
        packed: { text, lengths, streams: stderr ? streams : [], tsOffsetsMs },
      },
      lineCount: end - start,
      bytes,
    };
  }

  /** What a batch's lines count against the bound. */
  static costOf(batch: OutgoingBatch): number {
    return batch.bytes + batch.lineCount * LINE_OVERHEAD_BYTES;
  }
}
