/**
 * `b` when it is the whole of its memory, else an exact copy in memory of its own.
 * A cache must hold no more than the bytes it counts: a view keeps its whole backing
 * buffer alive (a batch's JSONL, a page of values, or one of Node's shared 8 KiB pools,
 * which `Buffer.from` and `allocUnsafe` give small buffers).
 */
export function ownBytes(b: Buffer): Buffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) return b;
  const own = Buffer.allocUnsafeSlow(b.byteLength);
  b.copy(own);
  return own;
}
