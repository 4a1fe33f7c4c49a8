import { describe, expect, test } from "vitest";
import { SecretMasker } from "../../src/lines/secret-masker.js";
import { LineSplitter } from "../../src/worker/line-splitter.js";

const SECRET = "TOPSECRET-987654";
const MAX = 100;

/** Lines with the secret starting at every position around the cut, fed in 7-byte reads, as the splitter emits them. */
function emitted(masker: SecretMasker | undefined): string[] {
  const out: string[] = [];
  const splitter = new LineSplitter(MAX, (line) => out.push(Buffer.from(line).toString("latin1")) > 0, masker);
  for (let at = 0; at < MAX + 20; at++) {
    const line = Buffer.from(`${"x".repeat(at)}${SECRET}${"y".repeat(300)}\n`);
    for (let i = 0; i < line.length; i += 7) splitter.push(line.subarray(i, i + 7));
  }
  return out;
}

describe("line splitter with a masker", () => {
  test("a secret that straddles the cut of an over-long line leaves no part of itself", () => {
    const lines = emitted(SecretMasker.create([SECRET]));
    expect(lines).toHaveLength(MAX + 20);
    for (const line of lines) {
      expect(line.length).toBeLessThanOrEqual(MAX);
      expect(line).not.toMatch(/TOP|987/);
      expect(line).toMatch(/\[joblog: line truncated, \d+ bytes cut\]$/);
    }
  });

  test("without the masker first, a straddling secret's first bytes survive the cut (what the masker prevents)", () => {
    const masker = SecretMasker.create([SECRET]) as SecretMasker;
    const cutThenMasked = emitted(undefined).map((line) => Buffer.from(masker.mask(Buffer.from(line, "latin1"))).toString("latin1"));
    expect(cutThenMasked.some((line) => line.includes("TOP"))).toBe(true);
  });
});
