import { describe, expect, test } from "vitest";
import {
  afterRecords,
  decodeLine,
  encodeColumns,
  encodeLines,
  encodeRecord,
  isoTimestamp,
  type RawLine,
  splitAtRecords,
} from "../../src/ingest/record-encoder.js";
import { truncateLine, truncationMarker } from "../../src/lines/line-limit.js";

const TS = Date.UTC(2024, 4, 6, 7, 8, 9, 12);
const MAX = 64 * 1024;

const canonical = (tsMs: number, stream: string, step: string, line: string) =>
  `${JSON.stringify({ ts: new Date(tsMs).toISOString(), stream, step, line })}\n`;

const raw = (text: string | Uint8Array, stream: RawLine["stream"] = "stdout", tsMs = TS): RawLine => ({
  text: typeof text === "string" ? Buffer.from(text) : text,
  stream,
  tsMs,
});

/** The parsed records of a JSONL buffer, checking that every raw \n ends a record. */
function records(jsonl: Buffer): Array<{ ts: string; stream: string; step: string; line: string }> {
  const text = jsonl.toString("utf8");
  expect(text.endsWith("\n")).toBe(true);
  return text
    .slice(0, -1)
    .split("\n")
    .map((r) => JSON.parse(r) as { ts: string; stream: string; step: string; line: string });
}

const tricky = [
  "plain",
  "",
  'say "hi"',
  "back\\slash",
  "tab\there",
  "new\nline",
  "carriage\rreturn",
  "nul\u0000byte",
  "bell\u0007 esc\u001b[31mred\u001b[0m del\u007f",
  "separators \u2028 \u2029",
  "ünïcödé ✓ 😀",
  '{"ts":"fake"}\n{"line":"injected"}',
];

test("timestamps are exactly Date#toISOString, across second, day and epoch boundaries, in any order", () => {
  const times = [
    0,
    -1,
    -1000,
    -1001,
    999,
    1000,
    1001,
    Date.UTC(2026, 10, 22, 23, 59, 59, 999),
    Date.UTC(2026, 10, 23),
    253402300799999,
    8.64e15,
  ];
  for (let i = 0; i < 3000; i++) times.push(Date.UTC(2026, 0, 1) + ((i * 7919) % 5000) - 2500);
  for (const t of times) expect(isoTimestamp(t), String(t)).toBe(new Date(t).toISOString());
  expect(isoTimestamp(1000.7)).toBe(new Date(1000).toISOString());
});

test("encodeLines is byte-for-byte JSON.stringify of each decoded line, for any bytes", () => {
  // A seeded generator of lines mixing plain text, every ASCII escape, UTF-8, invalid UTF-8 and over-long lines.
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  const alphabet = [..."abc xyz09", '"', "\\", "\u001b", "\t", "\r", "\u0000", "\u007f", "é", "€", "😀", "\u2028"].map((c) =>
    Buffer.from(c),
  );
  const lines: RawLine[] = [];
  for (let i = 0; i < 2000; i++) {
    const parts: Buffer[] = [];
    const length = rand(10) === 0 ? 400 : rand(40);
    for (let j = 0; j < length; j++) parts.push(alphabet[rand(alphabet.length)] as Buffer);
    if (rand(20) === 0) parts.push(Buffer.from([0xff, 0xc3, 0x28, 0xe2, 0x82])); // invalid sequences
    lines.push({ text: new Uint8Array(Buffer.concat(parts)), stream: rand(2) ? "stdout" : "stderr", tsMs: 1_700_000_000_000 + rand(5000) });
  }
  const max = 300;
  const expected = lines.map((l) => encodeRecord(l.tsMs, l.stream, "step-1", decodeLine(l.text, max).line)).join("");
  const encoded = encodeLines("step-1", lines, max);
  expect(encoded.jsonl.toString("utf8")).toBe(expected);
  expect(encoded.jsonl.equals(Buffer.from(expected, "utf8"))).toBe(true);
  expect(encoded.truncated).toBe(lines.filter((l) => l.text.byteLength > max).length);
});

test("encodeColumns is byte-for-byte the same, also when lines split a character or hold overlong, surrogate or truncated sequences", () => {
  let seed = 777;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  const pieces = [...'ab "\\\u001b\t', "é", "€", "😀", "\u2028", "\ufeff"].map((c) => Buffer.from(c));
  const odd = [[0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0x80], [0xff]].map((b) => Buffer.from(b));
  const all: Buffer[] = [];
  for (let i = 0; i < 4000; i++) all.push((rand(15) === 0 ? odd[rand(odd.length)] : pieces[rand(pieces.length)]) as Buffer);
  const text = Buffer.concat(all);
  // Lines cut at arbitrary byte counts, so some split a multi-byte character between them.
  const lengths: number[] = [];
  for (let at = 0; at < text.length; ) {
    const length = Math.min(text.length - at, rand(8) === 0 ? 350 : rand(30));
    lengths.push(length);
    at += length;
  }
  const max = 300;
  const base = 1_700_000_000_000;
  const offsets = lengths.map(() => rand(3000));
  const encoded = encodeColumns("step-2", { text, lengths, isStderr: (i) => i % 3 === 0, baseTsMs: base, tsOffsetsMs: offsets }, max);
  let at = 0;
  const expected = lengths
    .map((length, i) => {
      const line = decodeLine(text.subarray(at, at + length), max).line;
      at += length;
      return encodeRecord(base + (offsets[i] as number), i % 3 === 0 ? "stderr" : "stdout", "step-2", line);
    })
    .join("");
  expect(encoded.jsonl.equals(Buffer.from(expected, "utf8"))).toBe(true);
  expect(encoded.records).toBe(lengths.length);
});

test("encodeColumns copies plain ASCII lines as they are and still escapes, validates and cuts the others", () => {
  // Mostly plain lines, the case the batch-wide scan copies without a look: with a special byte
  // now and then, at a line's first and last byte too, and plain lines longer than the limit.
  const lines = [
    "plain ascii line 1",
    '"quoted at the start',
    "ends with a backslash \\",
    "x".repeat(400),
    "tab\there",
    "another plain line",
    "é at the end é",
    "",
    "y".repeat(300),
    "\u001b[32mcolour\u001b[39m",
    "last plain line",
  ].map((l) => Buffer.from(l));
  const text = Buffer.concat(lines);
  const lengths = lines.map((l) => l.length);
  const max = 300;
  const base = Date.UTC(2024, 0, 1, 0, 0, 59, 990);
  // Offsets that cross a second, so the prefix of each second is rebuilt.
  const offsets = lengths.map((_, i) => i * 3);
  const encoded = encodeColumns("plain", { text, lengths, isStderr: (i) => i % 2 === 1, baseTsMs: base, tsOffsetsMs: offsets }, max);
  const expected = lines
    .map((l, i) => encodeRecord(base + (offsets[i] as number), i % 2 === 1 ? "stderr" : "stdout", "plain", decodeLine(l, max).line))
    .join("");
  expect(encoded.jsonl.toString("utf8")).toBe(expected);
  expect(encoded.truncated).toBe(1);
});

describe("encodeRecord", () => {
  test("is JSON.stringify of {ts, stream, step, line} in that order, plus one newline", () => {
    for (const line of tricky) {
      expect(encodeRecord(TS, "stdout", "build", line)).toBe(canonical(TS, "stdout", "build", line));
      expect(encodeRecord(TS, "stderr", 'step "x"\n', line)).toBe(canonical(TS, "stderr", 'step "x"\n', line));
    }
  });

  test("writes ts in ISO form with milliseconds, also for whole seconds", () => {
    const whole = Date.UTC(2024, 0, 1, 0, 0, 0, 0);
    expect(encodeRecord(whole, "stdout", "t", "x")).toBe('{"ts":"2024-01-01T00:00:00.000Z","stream":"stdout","step":"t","line":"x"}\n');
    expect(encodeRecord(TS, "stdout", "t", "x")).toContain('"ts":"2024-05-06T07:08:09.012Z"');
    // Alternating timestamps must not reuse a stale one.
    expect(encodeRecord(whole, "stdout", "t", "x")).toContain("2024-01-01T00:00:00.000Z");
  });
});

describe("encodeLines", () => {
  test("gives the canonical bytes of every line, in order", () => {
    const lines = tricky.map((t, i) => raw(t, i % 2 ? "stderr" : "stdout", TS + i));
    const batch = encodeLines("build", lines, MAX);
    const expected = tricky.map((t, i) => canonical(TS + i, i % 2 ? "stderr" : "stdout", "build", t)).join("");
    expect(batch.jsonl.toString("utf8")).toBe(expected);
    expect(batch.records).toBe(tricky.length);
    expect(batch.truncated).toBe(0);
  });

  test("escapes control characters, so a raw newline only ever ends a record", () => {
    const control = Array.from({ length: 0x20 }, (_, c) => String.fromCharCode(c)).join("");
    const lines = [raw(control), raw("a\nb\r\nc"), raw('"\\')];
    const batch = encodeLines("t", lines, MAX);
    for (const byte of batch.jsonl.subarray(0, -1)) {
      if (byte < 0x20) expect(byte).toBe(0x0a);
    }
    expect(batch.jsonl.filter((b) => b === 0x0a).length).toBe(3);
    expect(records(batch.jsonl).map((r) => r.line)).toEqual([control, "a\nb\r\nc", '"\\']);
  });

  test("replaces invalid UTF-8 with U+FFFD instead of throwing", () => {
    const invalid = [
      Buffer.from([0x61, 0xff, 0x62]), // byte never valid in UTF-8
      Buffer.from([0x61, 0xc3]), // truncated 2-byte sequence at the end
      Buffer.from([0xe2, 0x9c, 0x61]), // truncated 3-byte sequence
      Buffer.from([0x80, 0x80]), // stray continuation bytes
      Buffer.from([0xed, 0xa0, 0x80]), // UTF-16 surrogate encoded in UTF-8
    ];
    const batch = encodeLines(
      "t",
      invalid.map((b) => raw(b)),
      MAX,
    );
    const lines = records(batch.jsonl).map((r) => r.line);
    expect(lines[0]).toBe("a\uFFFDb");
    expect(lines[1]).toBe("a\uFFFD");
    expect(lines[2]).toBe("\uFFFDa");
    for (const line of lines) expect(line).toContain("\uFFFD");
    // The output itself is valid UTF-8.
    expect(() => new TextDecoder("utf-8", { fatal: true }).decode(batch.jsonl)).not.toThrow();
  });

  test("keeps a leading byte order mark as printed", () => {
    const [record] = records(encodeLines("t", [raw("\uFEFFhello")], MAX).jsonl);
    expect(record?.line).toBe("\uFEFFhello");
  });

  test("cuts a line longer than the limit, with a marker naming the bytes cut, and counts it", () => {
    const max = 256;
    const long = "é".repeat(500); // 1000 bytes, cut positions land mid-character
    const batch = encodeLines("t", [raw(long), raw("x".repeat(max)), raw("short")], max);
    expect(batch.truncated).toBe(1);
    const [cut, exact, short] = records(batch.jsonl).map((r) => r.line);
    expect(exact).toBe("x".repeat(max));
    expect(short).toBe("short");
    const m = /^(é*) \[joblog: line truncated, (\d+) bytes cut\]$/.exec(cut ?? "");
    if (!m) throw new Error(`no marker in ${cut}`);
    const keptBytes = Buffer.byteLength(m[1] ?? "");
    expect(keptBytes + Number(m[2])).toBe(1000);
    expect(Buffer.byteLength(cut ?? "")).toBeLessThanOrEqual(max);
  });

  test("leaves a line the worker already cut to the same limit as it is, so the marker keeps its true count", () => {
    const max = 300;
    const workerCut = Buffer.from(truncateLine(Buffer.alloc(10_000, "w"), max));
    const kept = workerCut.indexOf(" [joblog:");
    expect(workerCut.subarray(kept).toString()).toBe(truncationMarker(10_000 - kept));
    const { line, truncated } = decodeLine(workerCut, max);
    expect(truncated).toBe(false);
    expect(line).toBe(workerCut.toString());
  });

  test("an empty batch encodes to nothing", () => {
    const batch = encodeLines("t", [], MAX);
    expect(batch.jsonl.length).toBe(0);
    expect(batch.records).toBe(0);
  });
});

/** JSONL of `count` records with lines of varying length. */
function sampleJsonl(count: number): Buffer {
  const lines = Array.from({ length: count }, (_, i) => raw(`line ${i} ${"x".repeat((i * 37) % 200)}`));
  return encodeLines("t", lines, MAX).jsonl;
}

describe("afterRecords", () => {
  test("gives the byte position just after the nth record", () => {
    const jsonl = Buffer.from(encodeRecord(TS, "stdout", "t", "a") + encodeRecord(TS, "stdout", "t", "bb"));
    const first = Buffer.byteLength(encodeRecord(TS, "stdout", "t", "a"));
    expect(afterRecords(jsonl, 0)).toBe(0);
    expect(afterRecords(jsonl, 1)).toBe(first);
    expect(afterRecords(jsonl, 2)).toBe(jsonl.length);
  });

  test("stops at the end when asked for more records than there are", () => {
    const jsonl = sampleJsonl(3);
    expect(afterRecords(jsonl, 10)).toBe(jsonl.length);
  });
});

describe("splitAtRecords", () => {
  test("returns small input whole", () => {
    const jsonl = sampleJsonl(3);
    expect(splitAtRecords(jsonl, jsonl.length)).toEqual([jsonl]);
  });

  test("splits into pieces that end at record boundaries, concatenate back to the input and are each about the target size", () => {
    const jsonl = sampleJsonl(500);
    const longestRecord = Math.max(
      ...jsonl
        .toString()
        .split("\n")
        .map((r) => Buffer.byteLength(r) + 1),
    );
    for (const target of [1024, 4096, 10_000]) {
      const pieces = splitAtRecords(jsonl, target);
      expect(Buffer.concat(pieces).equals(jsonl)).toBe(true);
      expect(pieces.length).toBeGreaterThan(1);
      for (const [i, piece] of pieces.entries()) {
        expect(piece.length).toBeGreaterThan(0);
        expect(piece.length).toBeLessThanOrEqual(target);
        expect(piece[piece.length - 1]).toBe(0x0a);
        // Every piece but the last is as full as the next record allows.
        if (i < pieces.length - 1) expect(piece.length).toBeGreaterThan(target - longestRecord);
        records(piece);
      }
    }
  });

  test("puts a record longer than the target in a piece of its own", () => {
    const big = encodeRecord(TS, "stdout", "t", "B".repeat(5000));
    const small = encodeRecord(TS, "stdout", "t", "s");
    const jsonl = Buffer.from(small + big + small + small);
    const pieces = splitAtRecords(jsonl, 1000);
    expect(Buffer.concat(pieces).equals(jsonl)).toBe(true);
    expect(pieces.map((p) => p.toString())).toEqual([small, big, small + small]);
  });
});
