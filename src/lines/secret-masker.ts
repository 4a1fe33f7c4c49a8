/**
 * Secret masking, shared by the worker (before a line leaves it) and the leader
 * (again, before a line is stored). A secret is replaced by `***` in every form a
 * build is likely to print it: as is, URL-encoded, and base64-encoded — whole,
 * and as the characters it contributes inside a longer base64 string, at each of
 * the three byte alignments (a token embedded in a base64 `user:token` header).
 */

/** What a secret is replaced with. */
export const MASK = "***";
/** Shorter values would mask ordinary words and digits, and reveal more than they hide. */
export const MIN_MASK_BYTES = 4;
/** Longer values are not secrets but documents; the bound keeps the combined search small. */
export const MAX_MASK_BYTES = 4096;
/** Masks one task may register. */
export const MAX_MASKS = 256;
/** Bytes of all masks of a task together: bounds the combined search (each value has about a dozen forms). */
export const MAX_TOTAL_MASK_BYTES = 64 * 1024;

/** Why a value cannot be a mask, naming `field` but never the value; undefined when it can. */
export function maskProblem(field: string, value: string): { tooShort: boolean; message: string } | undefined {
  const bytes = Buffer.byteLength(value);
  if (bytes < MIN_MASK_BYTES) {
    return {
      tooShort: true,
      message: `${field} is ${bytes} bytes long; a mask must be at least ${MIN_MASK_BYTES} bytes (shorter values would mask ordinary text)`,
    };
  }
  if (bytes > MAX_MASK_BYTES) return { tooShort: false, message: `${field} is ${bytes} bytes long; the limit is ${MAX_MASK_BYTES} bytes` };
  return undefined;
}

const toUrlSafe = (b64: string) => b64.replace(/\+/g, "-").replace(/\//g, "_");

/**
 * The base64 characters that depend only on `value`'s bytes when it starts `shift`
 * bytes into a longer encoded string (shift 0..2): the characters before and after
 * also carry bits of its neighbours.
 */
function base64Inside(value: Buffer, shift: number): string {
  const encoded = Buffer.concat([Buffer.alloc(shift), value, Buffer.alloc(2)]).toString("base64");
  const first = Math.ceil((8 * shift) / 6);
  const end = Math.floor((8 * (shift + value.length)) / 6);
  return encoded.slice(first, end);
}

/** Every form of one secret that is masked, as UTF-8 strings. */
export function maskForms(value: string): string[] {
  const bytes = Buffer.from(value, "utf8");
  const forms = new Set<string>([value]);
  const url = encodeURIComponent(value);
  forms.add(url);
  forms.add(url.replace(/%[0-9A-F]{2}/g, (hex) => hex.toLowerCase()));
  forms.add(url.replace(/%20/g, "+"));
  const whole = bytes.toString("base64");
  for (const b64 of [whole, whole.replace(/=+$/, ""), base64Inside(bytes, 0), base64Inside(bytes, 1), base64Inside(bytes, 2)]) {
    forms.add(b64);
    forms.add(toUrlSafe(b64));
  }
  // An inner base64 form of a short value can be a couple of characters: too common to mask.
  return [...forms].filter((form) => form.length >= MIN_MASK_BYTES);
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * Replaces registered secrets in lines of bytes. One combined search per line,
 * longest forms first so a whole encoded value wins over a fragment of it. Lines
 * are searched as latin1 text, one character per byte, so any UTF-8 secret
 * matches its exact bytes and the rest of the line is kept byte for byte.
 */
export class SecretMasker {
  private readonly pattern: RegExp;
  /** Bytes of the longest form: a secret that starts before a cut ends at most this far past it. */
  readonly reach: number;

  private constructor(values: readonly string[]) {
    const forms = new Set<string>();
    for (const value of values) for (const form of maskForms(value)) forms.add(Buffer.from(form, "utf8").toString("latin1"));
    const sorted = [...forms].sort((a, b) => b.length - a.length);
    this.reach = sorted[0]?.length ?? 0;
    try {
      this.pattern = new RegExp(sorted.map(escapeRegExp).join("|"), "g");
    } catch {
      // The engine's message quotes the pattern, which is made of the secrets: never let it out.
      throw new RangeError(`the masks cannot be compiled into one search (${sorted.length} forms)`);
    }
  }

  /**
   * A masker for `values`, or undefined when there are none (callers then skip
   * masking entirely: no per-line cost). Throws naming the offending entry of
   * `field` (`--mask`, `masks[2]`) when a value is too short or too long.
   */
  static create(values: readonly string[], field = "masks"): SecretMasker | undefined {
    if (values.length === 0) return undefined;
    if (values.length > MAX_MASKS) throw new RangeError(`${field} holds ${values.length} values; the limit is ${MAX_MASKS}`);
    const total = values.reduce((sum, value) => sum + Buffer.byteLength(value), 0);
    if (total > MAX_TOTAL_MASK_BYTES) throw new RangeError(`${field} hold ${total} bytes in all; the limit is ${MAX_TOTAL_MASK_BYTES}`);
    values.forEach((value, i) => {
      const problem = maskProblem(`${field}[${i}]`, value);
      if (problem) throw new RangeError(problem.message);
    });
    return new SecretMasker(values);
  }

  /** The line with every secret form replaced by `***`; the same array when none occurs. */
  mask(line: Uint8Array): Uint8Array {
    const text = Buffer.from(line.buffer, line.byteOffset, line.byteLength).toString("latin1");
    this.pattern.lastIndex = 0;
    if (!this.pattern.test(text)) return line;
    return Buffer.from(text.replace(this.pattern, MASK), "latin1");
  }
}
