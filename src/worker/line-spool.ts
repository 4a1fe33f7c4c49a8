import { closeSync, mkdtempSync, openSync, readSync, rmSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";

/** A line as the spool keeps it; its sequence number follows from its place. */
export interface SpooledLine {
  stream: number;
  text: Uint8Array;
  tsMs: number;
}

export interface LineSpoolOptions {
  /** Directory under which the spool makes its own; removed when the spool is. */
  dir: string;
  /** Bytes of lines on disk at most; `full` beyond it. */
  maxBytes: number;
  /** Size at which a new segment file starts; read segments are deleted. */
  segmentBytes?: number;
}

// stream (u8), capture time (f64 ms), text length (u32), then the text.
const HEADER_BYTES = 13;
const WRITE_BUFFER_BYTES = 64 * 1024;

/**
 * Lines a worker holds on disk when its memory buffer is full, in order, so a
 * command keeps running through a leader outage of minutes instead of blocking.
 * Append-only segment files read front to back: a line is read back into memory
 * when there is room there, and a segment is deleted once read. Writes are
 * buffered and unsynced: the spool outlives a slow or absent leader, not a crash
 * of the worker (its lines in memory would be gone anyway).
 */
export class LineSpool {
  private readonly dir: string;
  private readonly segmentBytes: number;
  /** Segment numbers still on disk, oldest first. */
  private readonly segments: number[] = [];
  private writeFd: number | undefined;
  private writeSegmentBytes = 0;
  private writeBuffer: Buffer[] = [];
  private writeBufferBytes = 0;
  private readFd: number | undefined;
  private readSegment = 0;
  private readPosition = 0;
  private nextSegment = 0;
  /** Bytes of lines on disk or in the write buffer, not yet read back. */
  private heldBytes = 0;
  private heldLines = 0;

  constructor(private readonly options: LineSpoolOptions) {
    this.dir = mkdtempSync(join(options.dir, "joblog-spool-"));
    this.segmentBytes = options.segmentBytes ?? 8 * 1024 * 1024;
  }

  get lineCount(): number {
    return this.heldLines;
  }

  get bytes(): number {
    return this.heldBytes;
  }

  get full(): boolean {
    return this.heldBytes >= this.options.maxBytes;
  }

  append(line: SpooledLine): void {
    const record = Buffer.allocUnsafe(HEADER_BYTES + line.text.byteLength);
    record.writeUInt8(line.stream, 0);
    record.writeDoubleLE(line.tsMs, 1);
    record.writeUInt32LE(line.text.byteLength, 9);
    record.set(line.text, HEADER_BYTES);
    this.writeBuffer.push(record);
    this.writeBufferBytes += record.length;
    this.heldBytes += record.length;
    this.heldLines++;
    if (this.writeBufferBytes >= WRITE_BUFFER_BYTES) this.flushWrites();
  }

  /** Takes lines from the front, up to about `maxBytes` of them (at least one when any is held). */
  take(maxBytes: number): SpooledLine[] {
    // Reads come when acknowledgements free memory, far less often than appends: write the buffer out, read the files.
    this.flushWrites();
    const lines: SpooledLine[] = [];
    let taken = 0;
    while (this.heldLines > 0 && (lines.length === 0 || taken < maxBytes)) {
      const line = this.readOne();
      lines.push(line);
      taken += HEADER_BYTES + line.text.byteLength;
    }
    if (this.heldLines === 0) this.closeFiles(true);
    return lines;
  }

  /** Deletes the spool's directory and everything in it. */
  remove(): void {
    this.closeFiles(false);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private closeFiles(deleteSegments: boolean): void {
    if (this.writeFd !== undefined) closeSync(this.writeFd);
    if (this.readFd !== undefined) closeSync(this.readFd);
    this.writeFd = undefined;
    this.readFd = undefined;
    if (deleteSegments) for (const n of this.segments.splice(0)) unlinkSync(this.segmentPath(n));
  }

  private segmentPath(n: number): string {
    return join(this.dir, `segment-${String(n).padStart(6, "0")}`);
  }

  private flushWrites(): void {
    if (this.writeBufferBytes === 0) return;
    if (this.writeFd === undefined || this.writeSegmentBytes >= this.segmentBytes) {
      if (this.writeFd !== undefined) closeSync(this.writeFd);
      const n = this.nextSegment++;
      this.writeFd = openSync(this.segmentPath(n), "a");
      this.segments.push(n);
      this.writeSegmentBytes = 0;
    }
    const data = Buffer.concat(this.writeBuffer, this.writeBufferBytes);
    for (let at = 0; at < data.length; ) at += writeSync(this.writeFd, data, at);
    this.writeSegmentBytes += data.length;
    this.writeBuffer = [];
    this.writeBufferBytes = 0;
  }

  private readOne(): SpooledLine {
    for (let guard = 0; guard <= this.segments.length; guard++) {
      if (this.readFd === undefined) {
        this.readSegment = this.segments[0] as number;
        this.readFd = openSync(this.segmentPath(this.readSegment), "r");
        this.readPosition = 0;
      }
      const header = Buffer.allocUnsafe(HEADER_BYTES);
      if (this.readExactly(header)) {
        const text = Buffer.allocUnsafe(header.readUInt32LE(9));
        if (!this.readExactly(text)) throw new Error(`spool segment ${this.readSegment} ends inside a line`);
        this.heldBytes -= HEADER_BYTES + text.length;
        this.heldLines--;
        return { stream: header.readUInt8(0), tsMs: header.readDoubleLE(1), text };
      }
      // Everything is written out before a read, so the end of a segment is the end of it for good.
      closeSync(this.readFd);
      this.readFd = undefined;
      if (this.readSegment === this.nextSegment - 1 && this.writeFd !== undefined) {
        closeSync(this.writeFd);
        this.writeFd = undefined;
      }
      unlinkSync(this.segmentPath(this.segments.shift() as number));
    }
    throw new Error("the spool holds fewer lines than it counted");
  }

  /** Fills `into` from the read segment; false at its end (nothing consumed). */
  private readExactly(into: Buffer): boolean {
    const fd = this.readFd as number;
    let got = 0;
    while (got < into.length) {
      const n = readSync(fd, into, got, into.length - got, this.readPosition + got);
      if (n === 0) break;
      got += n;
    }
    if (got < into.length) return false;
    this.readPosition += got;
    return true;
  }
}
