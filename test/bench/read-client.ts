/**
 * Benchmark client for reads of one completed task log: the whole log front to
 * back with Read (MB/s), reads at random offsets (median ms), and the last
 * 64 KiB (ms and bytes received). Prints one JSON line.
 */
import { parseArgs } from "node:util";
import { LeaderClient } from "../../src/client/leader-client.js";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    run: { type: "string" },
    task: { type: "string", default: "t0" },
    "random-reads": { type: "string", default: "20" },
    full: { type: "boolean", default: true },
  },
});
const client = new LeaderClient(values.url as string, { maxMessageBytes: 16 * 1024 * 1024, unaryTimeoutMs: 600_000 });
const ref = { runId: values.run as string, task: values.task as string };

const first = await client.read({ ...ref, offset: 0n, maxBytes: 1 });
const length = Number(first.length);

let fullSeconds = 0;
if (values.full) {
  const started = performance.now();
  let offset = 0n;
  let bytes = 0;
  for (let guard = 0; guard < 10_000_000; guard++) {
    const r = await client.read({ ...ref, offset });
    if (r.data.length === 0) break;
    bytes += r.data.length;
    offset = r.nextOffset;
  }
  fullSeconds = (performance.now() - started) / 1000;
  if (bytes !== length) throw new Error(`read ${bytes} bytes of ${length}`);
}

const randomMs: number[] = [];
for (let i = 0; i < Number(values["random-reads"]); i++) {
  const offset = BigInt(Math.floor(Math.random() * length));
  const started = performance.now();
  await client.read({ ...ref, offset, maxBytes: 64 * 1024 });
  randomMs.push(performance.now() - started);
}
randomMs.sort((a, b) => a - b);

const tailStarted = performance.now();
const last = await client.read({ ...ref, offset: BigInt(Math.max(0, length - 64 * 1024)), maxBytes: 64 * 1024 });
const lastMs = performance.now() - tailStarted;
client.close();
process.stdout.write(
  `${JSON.stringify({
    length,
    fullMBps: fullSeconds > 0 ? length / 1e6 / fullSeconds : 0,
    randomMedianMs: randomMs[Math.floor(randomMs.length / 2)] ?? 0,
    last64kMs: lastMs,
    last64kBytes: last.data.length,
  })}\n`,
);
