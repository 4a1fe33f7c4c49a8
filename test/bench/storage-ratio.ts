/**
 * Bytes on disk per byte of JSONL, and the leader's CPU per MB, for each chunk
 * compression setting: `joblog run` streams realistic CI log lines
 * (ci-log-lines.ts, written to a file and streamed with `cat`) into a leader
 * started per setting; after a clean stop the
 * log store's files (SST, WAL, MANIFEST) are summed.
 *
 *   npm run bench:storage -- [--lines 500000]
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { LeaderClient } from "../../src/client/leader-client.js";
import { createCiLogLines } from "./ci-log-lines.js";
import { joblogBin, startLeaderProcess } from "./leader-process.js";

const { values } = parseArgs({ options: { lines: { type: "string", default: "500000" } } });
const lines = Number(values.lines);
const bin = joblogBin;
// Written once and streamed with cat, so the command is never the bottleneck.
const input = join(mkdtempSync(join(tmpdir(), "joblog-bench-input-")), "ci.log");
const next = createCiLogLines(42);
writeFileSync(input, Array.from({ length: lines }, () => `${next()}\n`).join(""));
const settings: Array<[string, number]> = [
  ["none", 0],
  ["deflate", 1],
  ["deflate", 6],
  ["brotli", 0],
  ["brotli", 1],
  ["brotli", 4],
  ["brotli", 5],
];

function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks
}

function bytesUnder(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? bytesUnder(path) : statSync(path).size;
  }
  return total;
}

console.log(`${lines.toLocaleString("en")} realistic CI lines per setting`);
console.log("setting      JSONL MB  on disk MB  disk/JSONL  wall s  lines/s   leader CPU s/100 MB");
for (const [algorithm, level] of settings) {
  const data = mkdtempSync(join(tmpdir(), "joblog-bench-storage-"));
  const { child, url } = await startLeaderProcess(data, {
    JOBLOG_STORAGE__CHUNK_COMPRESSION: algorithm,
    JOBLOG_STORAGE__CHUNK_COMPRESSION_LEVEL: String(level),
  });
  try {
    const cpuBefore = cpuSeconds(child.pid as number);
    const started = performance.now();
    execFileSync(process.execPath, [bin, "run", "--quiet", "--leader", url, "--run", "storage", "--task", "ci", "--", "cat", input], {
      stdio: "inherit",
    });
    const wall = (performance.now() - started) / 1000;
    const cpu = cpuSeconds(child.pid as number) - cpuBefore;
    const client = new LeaderClient(url);
    const run = await client.getRun({ runId: "storage" });
    client.close();
    const jsonl =
      run.tasks.reduce((sum, t) => sum + Number(t.length), 0) + Number(run.runLog?.length ?? 0) + Number(run.serverEvents?.length ?? 0);
    child.kill("SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
    const disk = bytesUnder(join(data, "joblogs"));
    const name = `${algorithm} ${level}`.padEnd(12);
    console.log(
      `${name} ${(jsonl / 1e6).toFixed(1).padStart(8)}  ${(disk / 1e6).toFixed(1).padStart(10)}  ${(disk / jsonl).toFixed(3).padStart(10)}  ${wall.toFixed(2).padStart(6)}  ${Math.round(
        lines / wall,
      )
        .toLocaleString("en")
        .padStart(8)}  ${((cpu / jsonl) * 1e8).toFixed(2).padStart(8)}`,
    );
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
    rmSync(data, { recursive: true, force: true });
  }
}
rmSync(join(input, ".."), { recursive: true, force: true });
