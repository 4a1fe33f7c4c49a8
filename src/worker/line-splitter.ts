import { truncateLine } from "../lines/line-limit.js";
import type { SecretMasker } from "../lines/secret-masker.js";

/**
 * Splits a byte stream into lines as a command prints them: `\n` ends a line, a
 * `\r` before it is dropped (CRLF), a last line without a newline is kept at
 * end(), and a line longer than `maxLineBytes` is cut with a marker — without
 * ever holding more than `maxLineBytes` of it in memory. With a masker, secrets
 * are masked before the cut, and the bytes past the cut that a secret starting
 * before it can reach are held too, so no part of one survives the cut.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private held = 0;
  /** Bytes of the current line seen past the limit and discarded. */
  private dropped = 0;
  /** Whether the last discarded byte was a CR, which a following LF makes part of the terminator. */
  private droppedCr = false;

  /** Bytes held past the limit: what a masked secret can reach. */
  private readonly reach: number;

  /** `emit` returns false to ask the source to pause (backpressure). */
  constructor(
    private readonly maxLineBytes: number,
    private readonly emit: (line: Uint8Array) => boolean,
    private readonly masker?: SecretMasker,
  ) {
    this.reach = masker?.reach ?? 0;
  }

  /** Feeds a chunk; returns false when any emitted line asked to pause. */
  push(chunk: Buffer): boolean {
    let ok = true;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) {
        this.hold(chunk.subarray(start));
        return ok;
      }
      this.hold(chunk.subarray(start, nl));
      if (!this.flushLine(true)) ok = false;
      start = nl + 1;
    }
  }

  /** Emits a last line that had no newline. */
  end(): boolean {
    if (this.held === 0 && this.dropped === 0) return true;
    return this.flushLine(false);
  }

  private hold(bytes: Buffer): void {
    if (bytes.length === 0) return;
    // Keep one byte past the limit so a CR at the very end can still be told apart from content.
    const room = this.maxLineBytes + this.reach + 1 - this.held;
    if (bytes.length <= room) {
      this.parts.push(bytes);
      this.held += bytes.length;
      return;
    }
    if (room > 0) {
      this.parts.push(bytes.subarray(0, room));
      this.held += room;
    }
    this.dropped += bytes.length - Math.max(room, 0);
    this.droppedCr = bytes[bytes.length - 1] === 0x0d;
  }

  private flushLine(terminated: boolean): boolean {
    let line = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts, this.held);
    let total = this.held + this.dropped;
    if (terminated && this.dropped === 0 && line.length > 0 && line[line.length - 1] === 0x0d) {
      line = line.subarray(0, line.length - 1);
      total--;
    } else if (terminated && this.droppedCr) {
      total--;
    }
    this.parts = [];
    this.held = 0;
    this.dropped = 0;
    this.droppedCr = false;
    if (this.masker) {
      const masked = this.masker.mask(line);
      total -= line.length - masked.length;
      line = Buffer.from(masked.buffer, masked.byteOffset, masked.byteLength);
    }
    return this.emit(truncateLine(line, this.maxLineBytes, total));
  }
}
