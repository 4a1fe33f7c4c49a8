/**
 * `npm run bench`: ingest, tail, read and scale, each against a baseline
 * measured in the same run (a bare server of the same stack that does no work),
 * so ratios hold on a noisy machine. Prints a table and writes it as JSON.
 *
 *   npm run bench                   # full: medians of 3 runs; writes test/bench/results.json
 *   npm run bench -- --quick        # under a minute, smaller sizes; writes nothing unless --out
 *   npm run bench -- --only ingest,tail --runs 5
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type BenchServer, median, runClient, startBenchServer } from "./bench-processes.js";
import type { ProbeReport } from "./bench-server.js";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    runs: { type: "string" },
    only: { type: "string", default: "ingest,tail,read,scale" },
    out: { type: "string" },
  },
});
const quick = values.quick;
const runs = Number(values.runs ?? (quick ? 1 : 3));
const only = new Set((values.only ?? "").split(","));
const out = values.out ?? (quick ? undefined : join(import.meta.dirname, "results.json"));

interface Row {
  scenario: string;
  metric: string;
  joblog: number;
  baseline?: number;
  unit: string;
  goal?: string;
}
const rows: Row[] = [];
const AVG_LINE_BYTES = 95; // realistic CI lines from ci-log-lines.ts average about 95 bytes of text

type PushResult = { lines: number; seconds: number };
type TailResult = { lines: number; seconds: number; p50Ms: number; p99Ms: number };

async function withServer<T>(kind: "leader" | "bare", body: (server: BenchServer) => Promise<T>): Promise<T> {
  const server = await startBenchServer(kind);
  try {
    return await body(server);
  } finally {
    await server.stop();
  }
}

async function ingest(): Promise<void> {
  const lines = quick ? 200_000 : 1_000_000;
  // `packed` is what the joblog worker sends; `lines` (a LogLine message per line) is the simple form other clients may use.
  for (const form of ["packed", "lines"] as const) {
    for (const streams of [1, 8]) {
      const rate: Record<string, number> = {};
      for (const kind of ["bare", "leader"] as const) {
        rate[kind] = await withServer(kind, async (server) => {
          const rates: number[] = [];
          for (let i = 0; i < runs; i++) {
            const r = await runClient<PushResult>("push-client.ts", {
              url: server.url,
              streams,
              lines,
              form,
              run: `ingest-${form}-${streams}-${i}`,
            });
            rates.push(r.lines / r.seconds);
          }
          return median(rates);
        });
      }
      const scenario = `ingest, ${streams} worker${streams > 1 ? "s" : ""}${form === "lines" ? ", LogLine form" : ""}`;
      const goal = form === "lines" ? undefined : streams === 8 ? ">= 800,000 and >= 0.8x baseline" : ">= 0.8x baseline";
      rows.push({
        scenario,
        metric: "lines/s",
        joblog: rate.leader ?? 0,
        baseline: rate.bare ?? 0,
        unit: "lines/s",
        ...(goal && { goal }),
      });
      if (form === "lines") continue;
      rows.push({
        scenario,
        metric: "MB/s of line text",
        joblog: ((rate.leader ?? 0) * AVG_LINE_BYTES) / 1e6,
        baseline: ((rate.bare ?? 0) * AVG_LINE_BYTES) / 1e6,
        unit: "MB/s",
      });
    }
  }
}

async function tail(): Promise<void> {
  const lines = quick ? 100_000 : 500_000;
  const subscribers = 10;
  const egress = await withServer("leader", async (server) => {
    const results: number[] = [];
    for (let i = 0; i < runs; i++) {
      await runClient<PushResult>("push-client.ts", { url: server.url, streams: 1, lines, run: `tail-src-${i}`, complete: true });
      // Ten subscribers read the whole log while another task ingests.
      const ingesting = runClient<PushResult>("push-client.ts", { url: server.url, streams: 1, lines, run: `tail-busy-${i}` });
      const t = await runClient<TailResult>("tail-client.ts", { url: server.url, run: `tail-src-${i}`, subscribers });
      await ingesting;
      if (t.lines !== lines * subscribers) throw new Error(`tails got ${t.lines} of ${lines * subscribers} lines`);
      results.push(t.lines / t.seconds);
    }
    return median(results);
  });
  const bare = await withServer("bare", async (server) => {
    const results: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t = await runClient<TailResult>("tail-client.ts", { url: server.url, run: `bare-${lines}`, subscribers });
      results.push(t.lines / t.seconds);
    }
    return median(results);
  });
  rows.push({
    scenario: "tail, 10 subscribers, ingest running",
    metric: "lines/s delivered",
    joblog: egress,
    baseline: bare,
    unit: "lines/s",
    goal: ">= 2,000,000",
  });

  // Latency at a steady 10,000 lines/s: from the batch's send time (its timestamp) to each subscriber.
  const seconds = quick ? 3 : 10;
  const latency = await withServer("leader", async (server) => {
    const subs = runClient<TailResult>("tail-client.ts", { url: server.url, run: "latency", subscribers, latency: true, wait: true });
    await runClient<PushResult>("push-client.ts", {
      url: server.url,
      streams: 1,
      lines: 10_000 * seconds,
      batch: 100,
      rate: 10_000,
      run: "latency",
      complete: true,
    });
    return subs;
  });
  rows.push({ scenario: "push->tail latency at 10,000 lines/s", metric: "p50", joblog: latency.p50Ms, unit: "ms" });
  rows.push({ scenario: "push->tail latency at 10,000 lines/s", metric: "p99", joblog: latency.p99Ms, unit: "ms", goal: "<= 50" });
}

async function read(): Promise<void> {
  const sizes = quick ? [1e6, 10e6, 50e6] : [1e6, 100e6, 1e9];
  type ReadResult = { length: number; fullMBps: number; randomMedianMs: number; last64kMs: number; last64kBytes: number };
  const results = await withServer("leader", async (server) => {
    const out: Array<[number, ReadResult]> = [];
    for (const size of sizes) {
      // Lines of JSONL average about 165 bytes.
      const lines = Math.ceil(size / 165 / 1000) * 1000;
      await runClient<PushResult>("push-client.ts", { url: server.url, streams: 1, lines, run: `read-${size}`, complete: true });
      out.push([size, await runClient<ReadResult>("read-client.ts", { url: server.url, run: `read-${size}`, full: true })]);
    }
    return out;
  });
  const largest = results.at(-1) as [number, ReadResult];
  const bare = await withServer("bare", (server) =>
    runClient<ReadResult>("read-client.ts", { url: server.url, run: `bare-${largest[1].length}`, full: true }),
  );
  const mb = (n: number) => (n >= 1e9 ? `${n / 1e9} GB` : `${n / 1e6} MB`);
  rows.push({
    scenario: `read a ${mb(largest[0])} log from RocksDB`,
    metric: "MB/s",
    joblog: largest[1].fullMBps,
    baseline: bare.fullMBps,
    unit: "MB/s",
    goal: ">= 500",
  });
  rows.push({
    scenario: `read the last 64 KiB of ${mb(largest[0])}`,
    metric: "time",
    joblog: largest[1].last64kMs,
    baseline: bare.last64kMs,
    unit: "ms",
  });
  rows.push({
    scenario: `read the last 64 KiB of ${mb(largest[0])}`,
    metric: "bytes received",
    joblog: largest[1].last64kBytes,
    unit: "bytes",
  });
  for (const [size, r] of results) {
    rows.push({
      scenario: `read at a random offset, ${mb(size)} log`,
      metric: "median time",
      joblog: r.randomMedianMs,
      baseline: bare.randomMedianMs,
      unit: "ms",
      goal: "flat",
    });
  }
}

async function scale(): Promise<void> {
  const streams = quick ? 200 : 1000;
  const seconds = quick ? 5 : 15;
  const probe = async (kind: "leader" | "bare"): Promise<ProbeReport> =>
    withServer(kind, async (server) => {
      const child = spawn(
        process.execPath,
        [
          "--import",
          "tsx",
          join(import.meta.dirname, "scale-client.ts"),
          "--url",
          server.url,
          "--pushes",
          String(streams),
          "--tails",
          String(streams),
          "--seconds",
          String(seconds),
          ...(kind === "leader" ? ["--wait-subscribed"] : []),
        ],
        { stdio: ["ignore", "pipe", "inherit"] },
      );
      let report: Promise<ProbeReport> | undefined;
      let tally: { sent: number; received: number; errors: number; subscribed: number } | undefined;
      child.stdout.setEncoding("utf8").on("data", (s: string) => {
        if (s.includes('"steady"')) void server.resetProbe();
        if (s.includes('"sent"')) {
          report = server.report();
          tally = JSON.parse(s.slice(s.indexOf('{"sent"')).split("\n")[0] as string);
        }
      });
      await new Promise((resolve) => child.once("exit", resolve));
      if (!report || !tally) throw new Error("the scale client did not finish");
      // A figure measured with streams that failed (or tails that never subscribed) would flatter the leader.
      if (tally.errors > 0) throw new Error(`scale against the ${kind}: ${tally.errors} streams failed`);
      if (kind === "leader" && tally.subscribed < streams) {
        throw new Error(`scale: only ${tally.subscribed} of ${streams} Tail subscribers received their first message`);
      }
      return report;
    });
  const leader = await probe("leader");
  const bare = await probe("bare");
  const label = `${streams} Push streams + ${streams} Tail subscribers`;
  rows.push({ scenario: label, metric: "server peak RSS", joblog: leader.peakRssMb, baseline: bare.peakRssMb, unit: "MB", goal: "<= 300" });
  rows.push({
    scenario: label,
    metric: "event-loop delay p99",
    joblog: leader.eventLoopP99Ms,
    baseline: bare.eventLoopP99Ms,
    unit: "ms",
    goal: "<= 20",
  });
}

const started = Date.now();
for (const [name, scenario] of [
  ["ingest", ingest],
  ["tail", tail],
  ["read", read],
  ["scale", scale],
] as const) {
  if (!only.has(name)) continue;
  process.stderr.write(`bench: ${name}...\n`);
  await scenario();
}

const fmt = (n: number | undefined) => (n === undefined ? "" : n >= 100 ? Math.round(n).toLocaleString("en") : n.toFixed(2));
const table = [
  ["scenario", "metric", "joblog", "baseline", "ratio", "unit", "goal"],
  ...rows.map((r) => [
    r.scenario,
    r.metric,
    fmt(r.joblog),
    fmt(r.baseline),
    r.baseline ? (r.joblog / r.baseline).toFixed(2) : "",
    r.unit,
    r.goal ?? "",
  ]),
];
const widths = table[0]?.map((_, i) => Math.max(...table.map((row) => (row[i] ?? "").length))) ?? [];
for (const row of table)
  console.log(
    row
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd(),
  );
const machine = { cores: cpus().length, cpu: cpus()[0]?.model ?? "", node: process.version, date: new Date().toISOString() };
console.log(
  `\n${machine.cores} cores (${machine.cpu}), Node ${machine.node}, ${quick ? "quick" : "full"} mode, medians of ${runs} run(s), ${Math.round((Date.now() - started) / 1000)} s`,
);
if (out) {
  writeFileSync(out, `${JSON.stringify({ machine, mode: quick ? "quick" : "full", runs, rows }, null, 2)}\n`);
  console.log(`written to ${out}`);
}
