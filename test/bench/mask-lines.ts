import { performance } from "node:perf_hooks";
import { encodeLines, type RawLine } from "../../src/ingest/record-encoder.js";
import { SecretMasker } from "../../src/lines/secret-masker.js";
import { benchLines } from "./bench-lines.js";

/**
 * What masking costs the leader's hot path, next to what encoding the same
 * realistic CI lines to JSONL costs: masking alone with 1, 10 and 256 registered
 * secrets (none printed — the common case — and one line in a hundred holding
 * one). Prints microseconds per line, median of 25 rounds after a warm-up.
 * `node --import tsx test/bench/mask-lines.ts`; figures vary with machine load.
 */

const LINES = 20_000;
const ROUNDS = 25;
const texts = benchLines(LINES);
const secrets = (n: number) => Array.from({ length: n }, (_, i) => `s3cr3t-${i}-${"x".repeat(20)}-${i * 7919}`);

function linesWith(secret: string | undefined): RawLine[] {
  return texts.map((text, i) => ({
    text: Buffer.from(secret !== undefined && i % 100 === 0 ? `${text} ${secret}` : text),
    stream: "stdout",
    tsMs: 1_700_000_000_000 + i,
  }));
}

function measure(label: string, work: () => void): void {
  const perLine: number[] = [];
  for (let round = -5; round < ROUNDS; round++) {
    const start = performance.now();
    work();
    if (round >= 0) perLine.push(((performance.now() - start) * 1000) / LINES);
  }
  perLine.sort((a, b) => a - b);
  process.stdout.write(`${label.padEnd(48)} ${(perLine[Math.floor(ROUNDS / 2)] as number).toFixed(3)} µs/line\n`);
}

const plain = linesWith(undefined);
measure("encode to JSONL (no masks: all the hot path does)", () => encodeLines("build", plain, 64 * 1024));
for (const n of [1, 10, 256]) {
  const values = secrets(n);
  const masker = SecretMasker.create(values) as SecretMasker;
  const some = linesWith(values[0]);
  measure(`mask, ${n} secrets, none printed`, () => {
    for (const l of plain) masker.mask(l.text);
  });
  measure(`mask, ${n} secrets, 1% of lines hold one`, () => {
    for (const l of some) masker.mask(l.text);
  });
}
