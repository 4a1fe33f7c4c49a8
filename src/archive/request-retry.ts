import { Backoff, sleep } from "../worker/backoff.js";

export interface RetryPolicy {
  attempts: number;
  initialMs: number;
  maxMs: number;
}

/** Failures a retry cannot mend: thrown at once. */
export type Permanent = (err: unknown) => boolean;

/**
 * Runs one archive request with up to `attempts` tries, waiting between them with
 * exponential backoff and full jitter, capped at `maxMs`. The caller's own loop
 * (the next flush) takes over after the last try: nothing here retries forever.
 */
export async function withRetry<T>(
  policy: RetryPolicy,
  fn: () => Promise<T>,
  options: { signal?: AbortSignal | undefined; permanent?: Permanent } = {},
): Promise<T> {
  const backoff = new Backoff(policy.initialMs, policy.maxMs);
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= policy.attempts || options.signal?.aborted || options.permanent?.(err)) throw err;
      await sleep(backoff.next(), options.signal);
      if (options.signal?.aborted) throw err;
    }
  }
}

/**
 * For one step of a long copy (a segment read into the run's object, a part of a
 * multipart upload): a failed step throws away every step before it, so with n
 * steps and a per-request failure rate p the copy fails about n·p^k of the time.
 * These outer tries (each a full `withRetry` of the backend's policy) keep k high
 * enough that a flaky store still lets a run of hundreds of segments through.
 */
export const COPY_STEP_RETRY: RetryPolicy = { attempts: 6, initialMs: 100, maxMs: 2_000 };
