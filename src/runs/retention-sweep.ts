import type { RetentionConfig } from "../config/config-schema.js";
import { DomainError } from "../errors/domain-error.js";
import type { MetaStore } from "../store/meta-store.js";
import type { RunDeletion } from "./run-deletion.js";

const DAY_MS = 86_400_000;
/** Runs a sweep examines per run it may delete: running and recent runs among the oldest are skipped, not deleted. */
const EXAMINED_PER_DELETION = 20;

export interface RetentionSweepDeps {
  meta: MetaStore;
  deletion: RunDeletion;
  log: (message: string, err?: unknown) => void;
  now?: () => number;
}

/**
 * `retention.days`: on a timer, deletes completed runs that ended longer ago than
 * that, oldest first, exactly as `joblog runs delete` would. Each sweep is
 * bounded: it examines at most `max_runs_per_sweep` × 20 runs and deletes at most
 * `max_runs_per_sweep`; what is left waits for the next sweep. An archive outage
 * ends the sweep early (the next one tries again).
 */
export class RetentionSweep {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<string[]> | undefined;
  private readonly now: () => number;

  constructor(
    private readonly deps: RetentionSweepDeps,
    private readonly config: RetentionConfig,
  ) {
    this.now = deps.now ?? Date.now;
  }

  /** Starts the timer (and a first sweep); nothing when `days` is 0. */
  start(): void {
    if (this.config.days <= 0) return;
    this.timer = setInterval(() => void this.sweep(), this.config.sweep_interval_seconds * 1000);
    this.timer.unref();
    void this.sweep();
  }

  /** Stops the timer and waits for a sweep under way. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** One sweep (joins one under way); resolves with the ids it deleted. */
  sweep(): Promise<string[]> {
    this.running ??= this.sweepOnce()
      .catch((err: unknown) => {
        this.deps.log("retention sweep failed", err);
        return [];
      })
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  private async sweepOnce(): Promise<string[]> {
    const cutoff = this.now() - this.config.days * DAY_MS;
    const max = this.config.max_runs_per_sweep;
    const deleted: string[] = [];
    for (const run of await this.deps.meta.oldestRuns(max * EXAMINED_PER_DELETION)) {
      // Oldest first: a run that started after the cutoff cannot have ended before it, nor can any after it.
      if (run.startedAt >= cutoff || deleted.length >= max) break;
      if (run.state !== "completed" || run.endedAt === undefined || run.endedAt >= cutoff) continue;
      try {
        await this.deps.deletion.delete(run.runId);
        deleted.push(run.runId);
      } catch (err) {
        // Deleted or completed meanwhile, or still running after all: not this sweep's business.
        if (err instanceof DomainError && (err.kind === "not_found" || err.kind === "failed_precondition")) continue;
        throw err;
      }
    }
    if (deleted.length > 0) this.deps.log(`retention: deleted ${deleted.length} runs that ended more than ${this.config.days} days ago`);
    return deleted;
  }
}
