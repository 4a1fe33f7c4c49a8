import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ProbeReport } from "./bench-server.js";

/** The processes a benchmark runs: a server (leader or bare baseline) with its probe, and clients. */

const here = import.meta.dirname;

export interface BenchServer {
  url: string;
  report(): Promise<ProbeReport>;
  resetProbe(): Promise<void>;
  stop(): Promise<void>;
}

export async function startBenchServer(kind: "leader" | "bare"): Promise<BenchServer> {
  const data = mkdtempSync(join(tmpdir(), "joblog-bench-"));
  // JOBLOG_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the leader (not the baseline) under the benchmark.
  const nodeArgs = kind === "leader" ? (process.env.JOBLOG_BENCH_NODE_ARGS ?? "").split(" ").filter((a) => a !== "") : [];
  const child = spawn(process.execPath, [...nodeArgs, "--import", "tsx", join(here, "bench-server.ts"), "--kind", kind, "--data", data], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const ask = <T>(cmd: string, key: string) =>
    new Promise<T>((resolve, reject) => {
      const onMessage = (message: Record<string, unknown>) => {
        if (!(key in message)) return;
        child.off("message", onMessage);
        resolve(message[key] as T);
      };
      child.on("message", onMessage);
      child.once("exit", (code) => reject(new Error(`bench server exited with ${code}`)));
      if (cmd) child.send({ cmd });
    });
  const url = await ask<string>("", "ready");
  return {
    url,
    report: () => ask<ProbeReport>("report", "report"),
    resetProbe: async () => {
      await ask<boolean>("reset", "reset");
    },
    async stop() {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.send({ cmd: "stop" });
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      await exited;
      clearTimeout(timer);
      rmSync(data, { recursive: true, force: true });
    },
  };
}

/** Runs a client script to its end; resolves with the JSON it printed last. */
export function runClient<T>(script: string, args: Record<string, string | number | boolean>): Promise<T> {
  // `true` is a bare flag (`--complete`).
  const argv = Object.entries(args).flatMap(([k, v]) => (v === true ? [`--${k}`] : v === false ? [] : [`--${k}`, String(v)]));
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", join(here, script), ...argv], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout?.setEncoding("utf8").on("data", (s: string) => {
    out += s;
  });
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => {
      const last = out.trim().split("\n").at(-1);
      if (code !== 0 || !last) reject(new Error(`${script} exited with ${code}: ${out}`));
      else resolve(JSON.parse(last) as T);
    });
  });
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}
