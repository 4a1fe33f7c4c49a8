/**
 * Lets a backup find a moment when no change spanning both stores is half done.
 * Changes that write the metadata store and the log store one after the other
 * (a run or task created, a run completed) run as `shared` sections; `exclusive`
 * waits until none is in flight, holds new ones back while its (short) function
 * runs, then lets them go. Pushed lines touch the log store only and never wait here.
 */
export class WriteGate {
  private active = 0;
  private closed: Promise<void> | undefined;
  private drained: (() => void) | undefined;

  async shared<T>(fn: () => Promise<T>): Promise<T> {
    // Bounded: each wait outlasts one exclusive section, and those are short.
    while (this.closed) await this.closed;
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      if (this.active === 0) this.drained?.();
    }
  }

  async exclusive<T>(fn: () => T | Promise<T>): Promise<T> {
    while (this.closed) await this.closed;
    let reopen!: () => void;
    this.closed = new Promise<void>((resolve) => {
      reopen = resolve;
    });
    try {
      if (this.active > 0) {
        await new Promise<void>((resolve) => {
          this.drained = resolve;
        });
      }
      return await fn();
    } finally {
      this.drained = undefined;
      this.closed = undefined;
      reopen();
    }
  }
}
