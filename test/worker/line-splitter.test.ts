import { describe, expect, test } from "vitest";
import { truncationMarker } from "../../src/lines/line-limit.js";
import { LineSplitter } from "../../src/worker/line-splitter.js";

const MARKER = /^(.*) \[joblog: line truncated, (\d+) bytes cut\]$/s;

/** Feeds `chunks` to a splitter and returns the lines it emitted, after end(). */
function split(chunks: readonly (string | Buffer)[], maxLineBytes = 1024): Buffer[] {
  const lines: Buffer[] = [];
  const splitter = new LineSplitter(maxLineBytes, (line) => {
    lines.push(Buffer.from(line));
    return true;
  });
  for (const chunk of chunks) splitter.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  splitter.end();
  return lines;
}

const texts = (lines: Buffer[]) => lines.map((l) => l.toString("utf8"));

/** Every single-byte chunk of `text`. */
function byteByByte(text: string | Buffer): Buffer[] {
  const bytes = typeof text === "string" ? Buffer.from(text) : text;
  return [...bytes].map((b) => Buffer.from([b]));
}

/** Splits a truncated line into the bytes kept and the count its marker names. */
function parseTruncated(line: Buffer): { kept: Buffer; cut: number } {
  const m = MARKER.exec(line.toString("latin1"));
  if (!m) throw new Error(`no truncation marker in ${JSON.stringify(line.toString("utf8").slice(-80))}`);
  const cut = Number(m[2]);
  const keptBytes = line.length - truncationMarker(cut).length;
  return { kept: line.subarray(0, keptBytes), cut };
}

describe("LineSplitter", () => {
  const output = "first line\nsecond line\n\nfourth: ünïcödé ✓\nlast";
  const expected = ["first line", "second line", "", "fourth: ünïcödé ✓", "last"];

  test("splits on \\n the same whether fed in one chunk, byte by byte or in odd chunks", () => {
    expect(texts(split([output]))).toEqual(expected);
    expect(texts(split(byteByByte(output)))).toEqual(expected);
    const bytes = Buffer.from(output);
    for (const size of [2, 3, 7, 13]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
      expect(texts(split(chunks))).toEqual(expected);
    }
  });

  test("keeps empty lines", () => {
    expect(texts(split(["\n\na\n\n"]))).toEqual(["", "", "a", ""]);
    expect(texts(split(byteByByte("\n\n")))).toEqual(["", ""]);
  });

  test("keeps a last line without a newline at end(), and emits nothing more after a final newline", () => {
    expect(texts(split(["a\nno newline"]))).toEqual(["a", "no newline"]);
    expect(texts(split(["a\n"]))).toEqual(["a"]);
    expect(split([])).toEqual([]);
  });

  test("emits a line as soon as its newline arrives, not at end()", () => {
    const lines: string[] = [];
    const splitter = new LineSplitter(1024, (line) => lines.push(Buffer.from(line).toString()) > 0);
    splitter.push(Buffer.from("one\ntw"));
    expect(lines).toEqual(["one"]);
    splitter.push(Buffer.from("o\n"));
    expect(lines).toEqual(["one", "two"]);
  });

  test("strips the \\r of a CRLF, also when \\r and \\n arrive in different chunks", () => {
    expect(texts(split(["a\r\nb\r\n\r\nc"]))).toEqual(["a", "b", "", "c"]);
    expect(texts(split(byteByByte("a\r\nb\r\n")))).toEqual(["a", "b"]);
    expect(texts(split(["abc\r", "\ndef\r", "\n"]))).toEqual(["abc", "def"]);
  });

  test("keeps a lone \\r inside a line", () => {
    expect(texts(split(["progress 10%\rprogress 100%\n"]))).toEqual(["progress 10%\rprogress 100%"]);
    expect(texts(split(["\rstart\n"]))).toEqual(["\rstart"]);
    expect(texts(split(byteByByte("a\rb\r\r\n")))).toEqual(["a\rb\r"]);
  });

  test("a line of exactly maxLineBytes is kept whole, with or without CRLF", () => {
    const line = "x".repeat(256);
    expect(texts(split([`${line}\n`], 256))).toEqual([line]);
    expect(texts(split(byteByByte(`${line}\r\n`), 256))).toEqual([line]);
  });

  test("cuts an over-long line with a marker naming the exact number of bytes cut", () => {
    const max = 256;
    const line = Buffer.from("0123456789".repeat(100)); // 1000 bytes
    const chunks: Buffer[] = [];
    for (let i = 0; i < line.length; i += 33) chunks.push(line.subarray(i, i + 33));
    const [out, ...rest] = split([...chunks, "\nnext\n"], max);
    if (!out) throw new Error("no line emitted");
    expect(texts(rest)).toEqual(["next"]);
    const { kept, cut } = parseTruncated(out);
    expect(kept.length + cut).toBe(line.length);
    expect(kept.length).toBeGreaterThan(0);
    expect(line.subarray(0, kept.length).equals(kept)).toBe(true);
    expect(out.length).toBeLessThanOrEqual(max);
  });

  test("the count of bytes cut from an over-long CRLF line does not include the \\r", () => {
    const max = 256;
    for (const length of [max + 1, max + 2, 1000]) {
      const line = Buffer.alloc(length, "y");
      for (const chunks of [[Buffer.concat([line, Buffer.from("\r\n")])], [line, Buffer.from("\r"), Buffer.from("\n")]]) {
        const [out] = split(chunks, max);
        if (!out) throw new Error("no line emitted");
        const { kept, cut } = parseTruncated(out);
        expect(kept.length + cut, `line of ${length} bytes`).toBe(length);
        expect(kept.includes(0x0d)).toBe(false);
      }
    }
  });

  test("never cuts inside a UTF-8 character", () => {
    const max = 256;
    // 2-, 3- and 4-byte characters, so every cut position lands mid-character for one of them.
    for (const char of ["é", "✓", "😀"]) {
      const line = Buffer.from(char.repeat(300));
      for (const chunks of [[line], byteByByte(line)]) {
        const [out] = split(chunks, max);
        if (!out) throw new Error("no line emitted");
        const { kept, cut } = parseTruncated(out);
        expect(kept.length + cut).toBe(line.length);
        expect(kept.length % Buffer.byteLength(char)).toBe(0);
        expect(new TextDecoder("utf-8", { fatal: true }).decode(kept)).toBe(char.repeat(kept.length / Buffer.byteLength(char)));
        expect(out.length).toBeLessThanOrEqual(max);
      }
    }
  });

  test("cuts an over-long last line without a newline at end()", () => {
    const [out] = split(["z".repeat(5000)], 256);
    if (!out) throw new Error("no line emitted");
    const { kept, cut } = parseTruncated(out);
    expect(kept.length + cut).toBe(5000);
  });

  test("a 10 MB line fed in 64 KiB chunks comes out bounded, its first bytes kept and the rest counted", () => {
    const max = 64 * 1024;
    const chunk = 64 * 1024;
    const total = 10 * 1024 * 1024;
    const lines: Buffer[] = [];
    const splitter = new LineSplitter(max, (line) => lines.push(Buffer.from(line)) > 0);
    for (let sent = 0; sent < total; sent += chunk) {
      // Fresh buffers, with the first distinguishable, as a pipe delivers them.
      splitter.push(Buffer.alloc(chunk, sent === 0 ? "a" : "b"));
    }
    expect(lines).toEqual([]);
    splitter.push(Buffer.from("\nafter\n"));
    expect(lines.length).toBe(2);
    const [out, after] = lines as [Buffer, Buffer];
    expect(out.length).toBeLessThanOrEqual(max);
    const { kept, cut } = parseTruncated(out);
    expect(kept.length + cut).toBe(total);
    expect(kept.every((b) => b === 0x61)).toBe(true);
    expect(after.toString()).toBe("after");
  });

  test("push() returns false when emit asks to pause, true otherwise", () => {
    const answers = [true, false, true];
    const seen: string[] = [];
    const splitter = new LineSplitter(1024, (line) => {
      seen.push(Buffer.from(line).toString());
      return answers.shift() ?? true;
    });
    expect(splitter.push(Buffer.from("a\n"))).toBe(true);
    // The second line asks to pause; the third is still emitted, and push reports the pause.
    expect(splitter.push(Buffer.from("b\nc\n"))).toBe(false);
    expect(splitter.push(Buffer.from("partial"))).toBe(true);
    expect(seen).toEqual(["a", "b", "c"]);
  });

  test("end() returns what emit returned for the last line", () => {
    const paused = new LineSplitter(1024, () => false);
    paused.push(Buffer.from("tail"));
    expect(paused.end()).toBe(false);
    const empty = new LineSplitter(1024, () => false);
    expect(empty.end()).toBe(true);
  });
});
