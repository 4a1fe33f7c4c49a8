/**
 * The over-long-line rule, shared by the worker (which cuts at capture, so a
 * message never carries more than it must) and the leader (which enforces it for
 * every client): keep the first bytes up to the limit, never split a UTF-8
 * character, and say how much was cut.
 */

export function truncationMarker(cutBytes: number): string {
  return ` [joblog: line truncated, ${cutBytes} bytes cut]`;
}

/** Where to cut `bytes` so at most `maxBytes` remain and no UTF-8 character is split. */
export function cutPoint(bytes: Uint8Array, maxBytes: number): number {
  if (bytes.byteLength <= maxBytes) return bytes.byteLength;
  let cut = maxBytes;
  // Back off continuation bytes (10xxxxxx) to the start of a character.
  while (cut > 0 && ((bytes[cut] as number) & 0xc0) === 0x80) cut--;
  return cut;
}

/**
 * `bytes` (the first bytes of a line `totalBytes` long) cut so that what is kept
 * plus the marker fit in `maxBytes`; the same array when it fits. Fitting makes
 * the cut idempotent: the worker cuts at capture and the leader cuts again, and
 * the second cut must leave the first marker, with its true count, alone.
 */
export function truncateLine(bytes: Uint8Array, maxBytes: number, totalBytes = bytes.byteLength): Uint8Array {
  if (totalBytes <= maxBytes) return bytes;
  // The marker for the whole line is the longest one this cut can need.
  const cut = cutPoint(bytes, Math.max(0, maxBytes - truncationMarker(totalBytes).length));
  return Buffer.concat([bytes.subarray(0, cut), Buffer.from(truncationMarker(totalBytes - cut))]);
}
