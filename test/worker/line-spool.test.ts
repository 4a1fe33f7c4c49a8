import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { Stream } from "../../gen/joblog/v1/log_pb.js";
import { LineSpool } from "../../src/worker/line-spool.js";
import { PendingLines } from "../../src/worker/pending-lines.js";
import { linesOfBatch } from "../helpers/batch-lines.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-spool-test-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const text = (s: string) => Buffer.from(s);
const limits = { maxLines: 1000, maxBytes: 1 << 20, maxIntervalMs: 0 };

describe("LineSpool", () => {
  test("gives lines back in order across segments, deleting each segment once read and all files once empty", async () => {
    const spool = new LineSpool({ dir, maxBytes: 1 << 20, segmentBytes: 256 });
    for (let i = 0; i < 100; i++) spool.append({ stream: i % 2, text: text(`line ${i}`), tsMs: 1000 + i });
    expect(spool.lineCount).toBe(100);
    const first = spool.take(300);
    const rest = spool.take(1 << 20);
    const all = [...first, ...rest];
    expect(all.map((l) => Buffer.from(l.text).toString())).toEqual(Array.from({ length: 100 }, (_, i) => `line ${i}`));
    expect(all.map((l) => l.tsMs)).toEqual(Array.from({ length: 100 }, (_, i) => 1000 + i));
    expect(all[1]?.stream).toBe(1);
    expect(spool.lineCount).toBe(0);
    const [spoolDir] = await readdir(dir);
    expect(await readdir(join(dir, spoolDir as string))).toEqual([]);
    spool.remove();
    expect(await readdir(dir)).toEqual([]);
  });

  test("is full at its byte bound", () => {
    const spool = new LineSpool({ dir, maxBytes: 100 });
    spool.append({ stream: 0, text: text("x".repeat(80)), tsMs: 0 });
    expect(spool.full).toBe(false);
    spool.append({ stream: 0, text: text("x".repeat(80)), tsMs: 0 });
    expect(spool.full).toBe(true);
    spool.remove();
  });
});

describe("PendingLines with a spool", () => {
  test("takes lines past the memory bound into the spool without holding the caller back, and sends them in order with their numbers", () => {
    const spool = new LineSpool({ dir, maxBytes: 1 << 20 });
    const p = new PendingLines(1000, { spool });
    for (let i = 0; i < 50; i++) expect(p.add(Stream.STDOUT, text(`l${i}`), i)).toBe(true);
    expect(spool.lineCount).toBeGreaterThan(0);
    const seen: Array<[number, string]> = [];
    for (let round = 0; round < 100 && !p.isEmpty; round++) {
      const batch = p.takeBatch(limits, true, 100);
      if (!batch) break;
      const first = Number(batch.message.firstSeq);
      for (const [i, l] of linesOfBatch(batch.message).entries()) seen.push([first + i, l.text]);
      p.acknowledge(first + batch.lineCount - 1);
    }
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => [i + 1, `l${i}`]));
    expect(p.isEmpty).toBe(true);
    p.dispose();
  });

  test("holds the caller back once the spool is full too", () => {
    const p = new PendingLines(200, { spool: new LineSpool({ dir, maxBytes: 200 }) });
    let accepted = 0;
    while (p.add(Stream.STDOUT, text("x".repeat(50)), 0) && accepted < 100) accepted++;
    expect(accepted).toBeLessThan(10);
    p.dispose();
  });
});

describe("PendingLines with a drop limit", () => {
  test("drops what does not fit past the limit and writes a record saying how many, once there is room", () => {
    const p = new PendingLines(300, { dropAfterBytes: 400 });
    for (let i = 0; i < 10; i++) p.add(Stream.STDOUT, text(`line ${i} ${"x".repeat(90)}`), i);
    const batch = p.takeBatch(limits, true, 10);
    p.acknowledge(Number(batch?.message.firstSeq) + (batch?.lineCount ?? 0) - 1);
    p.add(Stream.STDOUT, text("after"), 20);
    const next = p.takeBatch(limits, true, 20);
    const lines = linesOfBatch(next?.message).map((l) => [l.text, l.stream]);
    expect(lines[0]?.[0]).toMatch(/^joblog: \d+ lines dropped/);
    expect(lines[0]?.[1]).toBe(Stream.STDERR);
    expect(lines[1]?.[0]).toBe("after");
    const dropped = Number(/(\d+) lines dropped/.exec(String(lines[0]?.[0]))?.[1]);
    expect(dropped + (batch?.lineCount ?? 0)).toBe(10);
    expect(Number(next?.message.firstSeq)).toBe((batch?.lineCount ?? 0) + 1);
  });

  test("never drops without a limit: the caller is held back instead", () => {
    const p = new PendingLines(300);
    for (let i = 0; i < 10; i++) p.add(Stream.STDOUT, text("x".repeat(100)), i);
    expect(p.lastSeq).toBe(10);
  });
});
