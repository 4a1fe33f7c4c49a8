const NEWLINE = 0x0a;

/**
 * Whole records out of `data`, a run of JSONL that starts at a record boundary at
 * log offset `dataStart`: from the first record that starts at or after `offset`
 * (an offset inside a record starts at the next one), up to `maxBytes` but at
 * least one record. Canonical records hold no raw newline, so `\n` ends a record.
 */
export function recordWindow(data: Buffer, dataStart: number, offset: number, maxBytes: number): { offset: number; data: Buffer } {
  let skip = Math.max(0, offset - dataStart);
  if (skip > 0 && data[skip - 1] !== NEWLINE) {
    const nl = data.indexOf(NEWLINE, skip);
    skip = nl < 0 ? data.length : nl + 1;
  }
  const rest = data.subarray(skip);
  if (rest.length <= maxBytes) return { offset: dataStart + skip, data: rest };
  const last = rest.lastIndexOf(NEWLINE, maxBytes - 1);
  const cut = last >= 0 ? last + 1 : rest.indexOf(NEWLINE) + 1 || rest.length;
  return { offset: dataStart + skip, data: rest.subarray(0, cut) };
}
