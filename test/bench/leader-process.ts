import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";

/** The built CLI the benchmarks run, as users do. */
export const joblogBin = join(import.meta.dirname, "../../bin/joblog.js");

/** A leader as its own process on a free loopback port; resolves once it prints its address. */
export async function startLeaderProcess(data: string, env: Record<string, string> = {}): Promise<{ child: ChildProcess; url: string }> {
  // JOBLOG_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the leader under the benchmark.
  const nodeArgs = (process.env.JOBLOG_BENCH_NODE_ARGS ?? "").split(" ").filter((a) => a !== "");
  const child = spawn(process.execPath, [...nodeArgs, joblogBin, "leader", "--data", data, "--listen", "127.0.0.1:0"], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, ...env },
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout?.setEncoding("utf8").on("data", (s: string) => {
      out += s;
      const address = /listening on (\S+)/.exec(out)?.[1];
      if (address) resolve(`http://${address}`);
    });
    child.once("exit", (code) => reject(new Error(`leader exited with ${code}`)));
  });
  return { child, url };
}
