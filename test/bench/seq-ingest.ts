/**
 * End-to-end ingest of one command's output: `joblog run --quiet -- seq 1 N` into a
 * leader started for the purpose, both as real processes on this machine. Prints
 * lines/s per run, the median, and the leader's peak RSS (VmHWM).
 *
 *   npm run bench -- [--lines 1000000] [--runs 3]
 *
 * The full benchmark suite (baselines, tails, reads, scale) is its own issue; this is
 * the figure the foundation reports.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { joblogBin, startLeaderProcess } from "./leader-process.js";

const { values } = parseArgs({ options: { lines: { type: "string", default: "1000000" }, runs: { type: "string", default: "3" } } });
const lines = Number(values.lines);
const runs = Number(values.runs);
const bin = joblogBin;
const data = mkdtempSync(join(tmpdir(), "joblog-bench-"));

function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

const { child: leader, url } = await startLeaderProcess(data);
const rates: number[] = [];
try {
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    execFileSync(
      process.execPath,
      [bin, "run", "--quiet", "--leader", url, "--run", `bench-${i}`, "--task", "seq", "--", "seq", "1", String(lines)],
      {
        stdio: "inherit",
      },
    );
    const seconds = (performance.now() - started) / 1000;
    rates.push(lines / seconds);
    console.log(`run ${i + 1}: ${lines} lines in ${seconds.toFixed(2)} s = ${Math.round(lines / seconds).toLocaleString("en")} lines/s`);
  }
  const median = [...rates].sort((a, b) => a - b)[Math.floor(rates.length / 2)] ?? 0;
  console.log(`median: ${Math.round(median).toLocaleString("en")} lines/s (joblog run -- seq 1 ${lines}, process start included)`);
  console.log(`leader peak RSS: ${peakRssMb(leader.pid as number)} MB`);
} finally {
  leader.kill("SIGTERM");
  await new Promise((resolve) => leader.once("exit", resolve));
  rmSync(data, { recursive: true, force: true });
}
