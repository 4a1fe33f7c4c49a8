/**
 * Seeded random inputs for the fuzz run: the same seed gives the same cases,
 * so a failure can be replayed with JOBLOG_FUZZ_SEED.
 */

/** mulberry32: small, fast, and good enough to pick test cases. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class FuzzInput {
  constructor(private readonly random: () => number) {}

  int(below: number): number {
    return Math.floor(this.random() * below);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  bytes(length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) out[i] = this.int(256);
    return out;
  }

  /** A valid message with some bytes flipped, cut short, or grown. */
  mutate(valid: Uint8Array): Buffer {
    const out = Buffer.from(valid);
    switch (this.int(4)) {
      case 0:
        for (let i = 0, n = 1 + this.int(4); i < n && out.length > 0; i++) out[this.int(out.length)] = this.int(256);
        return out;
      case 1:
        return out.subarray(0, this.int(out.length + 1));
      case 2:
        return Buffer.concat([out, this.bytes(1 + this.int(64))]);
      default:
        // A length-delimited field claiming far more bytes than follow.
        return Buffer.concat([out, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])]);
    }
  }
}

/** Identifiers that try to leave a directory, smuggle bytes, or overflow. */
export const HOSTILE_IDS: readonly string[] = [
  "..",
  "../..",
  "../../etc/passwd",
  "%2e%2e",
  "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
  "%252e%252e",
  "/etc/passwd",
  "/tmp",
  "C:\\Windows",
  "..\\..\\x",
  "a\0b",
  "\0",
  "run\n_server",
  ".",
  ".hidden",
  "-rf",
  "x".repeat(129),
  "y".repeat(70_000),
  "ünïcödé",
  "\u202etxt.exe",
  "a/b",
  "",
  " ",
  "_run",
  "_server",
];

/** A gRPC length-prefixed frame: flags, 4-byte big-endian length (possibly a lie), payload. */
export function grpcFrame(payload: Uint8Array, options: { compressed?: boolean; declaredLength?: number } = {}): Buffer {
  const header = Buffer.alloc(5);
  header[0] = options.compressed ? 1 : 0;
  header.writeUInt32BE(options.declaredLength ?? payload.length, 1);
  return Buffer.concat([header, payload]);
}
