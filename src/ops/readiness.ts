/** One dependency the leader needs to do its work; throws when it cannot be used. */
export interface ReadinessCheck {
  name: string;
  check(signal: AbortSignal): Promise<void>;
}

export interface ReadinessReport {
  ready: boolean;
  checks: Array<{ name: string; ok: boolean; error?: string }>;
}

export interface ReadinessOptions {
  /** A report is reused this long: probes every few seconds from several places must not each reach S3 or KMS. */
  cacheMs: number;
  /** Bound on each check: an unanswered dependency is a failed one. */
  timeoutMs: number;
}

/**
 * Whether the leader can serve: its stores are open and, when configured, the
 * archive and the KMS answer. Checks run together; concurrent callers share one
 * evaluation, and its result is kept for `cacheMs`.
 */
export class Readiness {
  private last: { at: number; report: ReadinessReport } | undefined;
  private running: Promise<ReadinessReport> | undefined;
  private stopping = false;

  constructor(
    private readonly checks: readonly ReadinessCheck[],
    private readonly options: ReadinessOptions,
  ) {}

  /** From now on the leader reports itself not ready: it is shutting down. */
  markStopping(): void {
    this.stopping = true;
  }

  async report(): Promise<ReadinessReport> {
    if (this.stopping) return { ready: false, checks: [{ name: "leader", ok: false, error: "shutting down" }] };
    if (this.last && Date.now() - this.last.at < this.options.cacheMs) return this.last.report;
    this.running ??= this.evaluate().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async evaluate(): Promise<ReadinessReport> {
    const checks = await Promise.all(
      this.checks.map(async ({ name, check }) => {
        const signal = AbortSignal.timeout(this.options.timeoutMs);
        try {
          await Promise.race([check(signal), aborted(signal, name, this.options.timeoutMs)]);
          return { name, ok: true };
        } catch (err) {
          return { name, ok: false, error: err instanceof Error ? err.message : String(err) };
        }
      }),
    );
    const report = { ready: checks.every((c) => c.ok), checks };
    this.last = { at: Date.now(), report };
    return report;
  }
}

function aborted(signal: AbortSignal, name: string, ms: number): Promise<never> {
  return new Promise((_, reject) => {
    signal.addEventListener("abort", () => reject(new Error(`${name} did not answer within ${ms} ms`)), { once: true });
  });
}
