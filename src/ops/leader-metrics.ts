import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/** Live figures the metrics read when scraped, rather than being told of every change. */
export interface MetricSources {
  pushStreams(): number;
  tailSubscribers(): number;
  /** Runs with bytes not yet archived; undefined without an archive. */
  archiveBacklogRuns(): number | undefined;
  /** Bytes on disk per store (SST files plus memtables), by store name. */
  storeBytes(): Array<[store: string, bytes: number]>;
}

/**
 * The leader's Prometheus metrics, in a registry of its own (several leaders can
 * share a process in tests). Labels carry no run, task or workspace ids: their
 * number is unbounded and ids are the operator's business only in the logs.
 */
export class LeaderMetrics {
  readonly registry = new Registry();
  private sources: MetricSources | undefined;
  private readonly ingestedLines: Counter;
  private readonly ingestedBytes: Counter;
  private readonly pushStreamsOpened: Counter;
  private readonly commitSeconds: Histogram;
  private readonly archiveFailures: Counter;
  private readonly kmsCalls: Counter<"operation" | "outcome">;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: "joblog_" });
    this.ingestedLines = new Counter({
      name: "joblog_ingested_lines_total",
      help: "Lines stored (resends of stored lines not counted).",
      registers,
    });
    this.ingestedBytes = new Counter({ name: "joblog_ingested_bytes_total", help: "Bytes of JSONL stored.", registers });
    this.pushStreamsOpened = new Counter({ name: "joblog_push_streams_total", help: "Push streams opened.", registers });
    this.commitSeconds = new Histogram({
      name: "joblog_commit_latency_seconds",
      help: "From a batch's arrival to its durable commit (queueing, sealing, RocksDB write).",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.archiveFailures = new Counter({ name: "joblog_archive_failures_total", help: "Failed archive flushes of a run.", registers });
    this.kmsCalls = new Counter({
      name: "joblog_kms_calls_total",
      help: "Calls to the KMS key provider, by operation and outcome (ok, unavailable, refused).",
      labelNames: ["operation", "outcome"],
      registers,
    });
    const metrics = this;
    new Gauge({
      name: "joblog_push_streams",
      help: "Push streams open now.",
      registers,
      collect() {
        this.set(metrics.sources?.pushStreams() ?? 0);
      },
    });
    new Gauge({
      name: "joblog_tail_subscribers",
      help: "Tail subscribers (Tail RPCs and log WebSockets) open now.",
      registers,
      collect() {
        this.set(metrics.sources?.tailSubscribers() ?? 0);
      },
    });
    new Gauge({
      name: "joblog_archive_backlog_runs",
      help: "Runs with bytes not yet archived (0 without an archive).",
      registers,
      collect() {
        this.set(metrics.sources?.archiveBacklogRuns() ?? 0);
      },
    });
    new Gauge({
      name: "joblog_store_size_bytes",
      help: "Approximate bytes of each RocksDB store: SST files plus memtables.",
      labelNames: ["store"],
      registers,
      collect() {
        for (const [store, bytes] of metrics.sources?.storeBytes() ?? []) this.set({ store }, bytes);
      },
    });
  }

  /** Connects the gauges to the leader's parts, once they exist. */
  bind(sources: MetricSources): void {
    this.sources = sources;
  }

  committed(lines: number, bytes: number, seconds: number): void {
    if (lines > 0) this.ingestedLines.inc(lines);
    if (bytes > 0) this.ingestedBytes.inc(bytes);
    this.commitSeconds.observe(seconds);
  }

  pushStreamOpened(): void {
    this.pushStreamsOpened.inc();
  }

  archiveFailed(): void {
    this.archiveFailures.inc();
  }

  kmsCall(operation: string, outcome: "ok" | "unavailable" | "refused"): void {
    this.kmsCalls.inc({ operation, outcome });
  }

  /** The exposition text and its content type. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
