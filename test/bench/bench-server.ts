/**
 * A server process for the benchmarks: either the real leader (`--kind leader`)
 * or the bare baseline (`--kind bare`), with a probe the benchmark queries over
 * IPC for the process's peak RSS, CPU time and event-loop delay. The probe only
 * observes; the leader is the one `joblog leader` runs.
 *
 *   node --import tsx test/bench/bench-server.ts --kind leader --data DIR
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { configSchema } from "../../src/config/config-schema.js";
import { startBareServer } from "./bare-server.js";

// The leader as `joblog leader` runs it: built code (`npm run bench` builds first). Run from
// source, each of its worker threads would load tsx too, about 35 MB apiece.
const built = new URL("../../dist/src/leader/leader.js", import.meta.url).href;
const { startLeader } = (await import(built)) as typeof import("../../src/leader/leader.js");

const { values } = parseArgs({
  options: { kind: { type: "string", default: "leader" }, data: { type: "string", default: "" }, env: { type: "string", default: "" } },
});

export interface ProbeReport {
  rssMb: number;
  peakRssMb: number;
  cpuSeconds: number;
  eventLoopP50Ms: number;
  eventLoopP99Ms: number;
  eventLoopMaxMs: number;
}

const delay = monitorEventLoopDelay({ resolution: 5 });
delay.enable();

let server: { url: string; stop(): Promise<void> };
if (values.kind === "bare") {
  server = await startBareServer();
} else {
  const config = configSchema.parse({ server: { listen: "127.0.0.1:0", data_dir: values.data } });
  const leader = await startLeader(config, (message, err) => process.stderr.write(`leader: ${message} ${err ?? ""}\n`));
  server = { url: `http://${leader.address}`, stop: () => leader.stop() };
}

function report(): ProbeReport {
  const usage = process.resourceUsage();
  return {
    rssMb: Math.round(process.memoryUsage.rss() / 1048576),
    peakRssMb: Math.round(usage.maxRSS / 1024),
    cpuSeconds: (usage.userCPUTime + usage.systemCPUTime) / 1e6,
    eventLoopP50Ms: delay.percentile(50) / 1e6,
    eventLoopP99Ms: delay.percentile(99) / 1e6,
    eventLoopMaxMs: delay.max / 1e6,
  };
}

process.on("message", (message: { cmd: string }) => {
  if (message.cmd === "reset") {
    delay.reset();
    process.send?.({ reset: true });
  } else if (message.cmd === "report") {
    process.send?.({ report: report() });
  } else if (message.cmd === "stop") {
    server.stop().then(() => process.exit(0));
  }
});
process.send?.({ ready: server.url });
