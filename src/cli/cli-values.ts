/** Parsing of numeric command-line values, with messages that name the option. */

export function parseOffset(value: string, option = "--offset"): number {
  if (!/^\d+$/.test(value)) throw new Error(`${option} must be a whole number of bytes, not ${JSON.stringify(value)}`);
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new Error(`${option} is too large`);
  return n;
}

export function parseCount(value: string, option: string): number {
  if (!/^\d+$/.test(value) || Number(value) === 0)
    throw new Error(`${option} must be a positive whole number, not ${JSON.stringify(value)}`);
  return Number(value);
}
