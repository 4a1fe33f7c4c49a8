import { describe, expect, test } from "vitest";
import { Stream } from "../../gen/joblog/v1/log_pb.js";
import { PendingLines } from "../../src/worker/pending-lines.js";
import { linesOfBatch } from "../helpers/batch-lines.js";

const limits = { maxLines: 3, maxBytes: 1000, maxIntervalMs: 100 };
const text = (s: string) => Buffer.from(s);

describe("PendingLines", () => {
  test("numbers lines from 1 and batches them with consecutive sequence numbers and time offsets", () => {
    const p = new PendingLines(1 << 20);
    p.add(Stream.STDOUT, text("a"), 1000);
    p.add(Stream.STDERR, text("b"), 1005);
    p.add(Stream.STDOUT, text("c"), 1010);
    const batch = p.takeBatch(limits, false, 1010);
    expect(batch?.message.firstSeq).toBe(1n);
    expect(batch?.message.baseTsUnixMs).toBe(1000n);
    expect(linesOfBatch(batch?.message).map((l) => [l.text, l.stream, l.tsOffsetMs])).toEqual([
      ["a", Stream.STDOUT, 0],
      ["b", Stream.STDERR, 5],
      ["c", Stream.STDOUT, 10],
    ]);
    expect(p.allSent).toBe(true);
  });

  test("holds back a small young batch until it is full, old enough or flushed", () => {
    const p = new PendingLines(1 << 20);
    p.add(Stream.STDOUT, text("a"), 1000);
    expect(p.takeBatch(limits, false, 1050)).toBeUndefined();
    expect(p.takeBatch(limits, false, 1100)?.lineCount).toBe(1);
    p.add(Stream.STDOUT, text("b"), 2000);
    expect(p.takeBatch(limits, true, 2000)?.lineCount).toBe(1);
  });

  test("is bounded: add reports the bound, room() waits for an acknowledgement", async () => {
    const p = new PendingLines(300);
    expect(p.add(Stream.STDOUT, text("x".repeat(100)), 0)).toBe(true);
    expect(p.add(Stream.STDOUT, text("x".repeat(100)), 0)).toBe(false); // 2 x (100 + per-line overhead) > 300
    let roomy = false;
    const room = p.room().then(() => {
      roomy = true;
    });
    await Promise.resolve();
    expect(roomy).toBe(false);
    p.acknowledge(1);
    await room;
    expect(p.durableSeq).toBe(1);
  });

  test("a rewind resends everything not acknowledged, with the same sequence numbers", () => {
    const p = new PendingLines(1 << 20);
    for (const [i, s] of ["a", "b", "c", "d"].entries()) p.add(Stream.STDOUT, text(s), i);
    expect(p.takeBatch({ ...limits, maxLines: 4 }, true, 0)?.lineCount).toBe(4);
    p.acknowledge(2);
    p.rewind();
    const again = p.takeBatch({ ...limits, maxLines: 4 }, true, 0);
    expect(again?.message.firstSeq).toBe(3n);
    expect(again?.lineCount).toBe(2);
    p.acknowledge(1); // an older acknowledgement changes nothing
    expect(p.durableSeq).toBe(2);
  });
});

test("lines held before the leader first answers are numbered after what it already holds", () => {
  const p = new PendingLines(1 << 20);
  p.add(Stream.STDOUT, text("new 1"), 0);
  p.add(Stream.STDOUT, text("new 2"), 0);
  p.startAfter(100);
  expect(p.durableSeq).toBe(100);
  expect(p.takeBatch(limits, true, 0)?.message.firstSeq).toBe(101n);
  p.add(Stream.STDOUT, text("new 3"), 0);
  expect(p.lastSeq).toBe(103);
  p.startAfter(500); // only the first answer places the lines
  expect(p.lastSeq).toBe(103);
});
