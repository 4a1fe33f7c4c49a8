import { describe, expect, test } from "vitest";
import { Backoff, sleep } from "../../src/worker/backoff.js";

/** A random source that always returns `value`. */
const fixed = (value: number) => () => value;

describe("Backoff", () => {
  test("with the top of the random range, delays double from the initial one and stop at the cap", () => {
    const backoff = new Backoff(100, 5000, fixed(1));
    const delays = Array.from({ length: 10 }, () => backoff.next());
    expect(delays).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000]);
  });

  test("stays at the cap after very many attempts", () => {
    const backoff = new Backoff(1, 10_000, fixed(1));
    let last = 0;
    for (let i = 0; i < 1000; i++) last = backoff.next();
    expect(last).toBe(10_000);
  });

  test("full jitter: each delay is the random fraction of the ceiling, within [0, ceiling]", () => {
    const randoms = [0, 0.5, 0.25, 0.999, 0.1];
    const backoff = new Backoff(100, 1000, () => randoms.shift() ?? 0);
    expect([backoff.next(), backoff.next(), backoff.next(), backoff.next(), backoff.next()]).toEqual([0, 100, 100, 799, 100]);
  });

  test("with the real random source, every delay lies within [0, ceiling]", () => {
    const backoff = new Backoff(100, 3000);
    for (let attempt = 0; attempt < 200; attempt++) {
      const ceiling = Math.min(3000, 100 * 2 ** attempt);
      const delay = backoff.next();
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThanOrEqual(ceiling);
      expect(Number.isInteger(delay)).toBe(true);
    }
  });

  test("reset() starts again from the initial delay", () => {
    const backoff = new Backoff(50, 10_000, fixed(1));
    backoff.next();
    backoff.next();
    expect(backoff.next()).toBe(200);
    backoff.reset();
    expect(backoff.next()).toBe(50);
    expect(backoff.next()).toBe(100);
  });
});

describe("sleep", () => {
  test("resolves at once when the signal is already aborted", async () => {
    await expect(sleep(60_000, AbortSignal.abort())).resolves.toBeUndefined();
  });

  test("resolves when the signal aborts, before the delay", async () => {
    const stop = new AbortController();
    const slept = sleep(60_000, stop.signal);
    stop.abort();
    await expect(slept).resolves.toBeUndefined();
  });
});
