import { Stream } from "../../../gen/joblog/v1/log_pb.js";
import { LeaderClient } from "../../../src/client/leader-client.js";
import { faultLine } from "./fault-lines.js";

/**
 * Negative controls: workers that break the delivery protocol on purpose, so each
 * scenario proves its check can fail. Test harness only; nothing like this exists
 * in joblog itself.
 * - `renumber`: after a broken stream it numbers its unacknowledged lines after the
 *   leader's high-water mark instead of keeping their numbers, which defeats the
 *   leader's dedup: lines stored but not yet acknowledged are stored again.
 * - `forget`: counts a line acknowledged once it is sent, and after a broken
 *   stream drops what it had not seen acknowledged, so those lines are lost.
 */
export type UnsafeMode = "renumber" | "forget";

interface Held {
  seq: number;
  index: number;
}

const BATCH_LINES = 50;
const BATCHES_PER_STREAM = 20;

export class UnsafeWorker {
  private readonly client: LeaderClient;
  private readonly acked = new Set<number>();
  private count = 0;
  private stopping = false;
  private readonly finished: Promise<void>;

  constructor(
    url: string,
    private readonly runId: string,
    readonly task: string,
    private readonly mode: UnsafeMode,
    private readonly tickMs = 10,
  ) {
    this.client = new LeaderClient(url, { unaryTimeoutMs: 5000, maxReconnectBackoffMs: 500 });
    this.finished = this.run();
    this.finished.catch(() => undefined);
  }

  /** Lines the worker believes acknowledged so far. */
  get acknowledgedCount(): number {
    return this.acked.size;
  }

  /** Stops and returns what was written and what the worker believes acknowledged. */
  async finish(): Promise<{ written: string[]; acknowledged: string[] }> {
    this.stopping = true;
    await this.finished;
    this.client.close();
    const written = Array.from({ length: this.count }, (_, i) => faultLine(this.task, i));
    return { written, acknowledged: written.filter((_, i) => this.acked.has(i)) };
  }

  private async run(): Promise<void> {
    const ref = { runId: this.runId, task: this.task };
    let held: Held[] = [];
    let nextSeq = 1;
    let broken = false;
    // Bounded: a control that cannot reach the leader for this long gives up.
    for (let attempt = 0; attempt < 10_000 && !(this.stopping && held.length === 0); attempt++) {
      try {
        // The first stream opens the task itself; after a break the control asks where the log stands.
        const durable = attempt === 0 ? 0 : Number((await this.client.openTask({ task: ref })).durableSeq);
        if (broken && this.mode === "renumber") {
          for (const [i, h] of held.entries()) h.seq = durable + 1 + i;
        } else {
          held = this.acknowledge(held, durable);
          if (broken) held = [];
        }
        nextSeq = durable + 1 + held.length;
        broken = false;
        const call = this.client.push();
        call.write({ task: ref });
        // Resend what is held, then new lines, a batch per tick.
        for (let b = 0; b < held.length; b += BATCH_LINES) call.write({ batch: this.batchOf(held.slice(b, b + BATCH_LINES)) });
        for (let n = 0; n < BATCHES_PER_STREAM && !this.stopping; n++) {
          const fresh: Held[] = [];
          for (let i = 0; i < BATCH_LINES; i++) fresh.push({ seq: nextSeq++, index: this.count++ });
          held.push(...fresh);
          if (!call.write({ batch: this.batchOf(fresh) })) await call.drained();
          if (this.mode === "forget") for (const h of fresh) this.acked.add(h.index);
          await new Promise((resolve) => setTimeout(resolve, this.tickMs));
        }
        const response = await call.end();
        held = this.acknowledge(held, Number(response.durableSeq));
      } catch {
        broken = true;
        await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 150));
      }
    }
  }

  private acknowledge(held: Held[], durable: number): Held[] {
    for (const h of held) if (h.seq <= durable) this.acked.add(h.index);
    return held.filter((h) => h.seq > durable);
  }

  private batchOf(lines: Held[]) {
    const base = Date.now();
    return {
      firstSeq: BigInt(lines[0]?.seq ?? 1),
      baseTsUnixMs: BigInt(base),
      lines: lines.map((h) => ({ text: Buffer.from(faultLine(this.task, h.index)), stream: Stream.STDOUT, tsOffsetMs: 0 })),
    };
  }
}
