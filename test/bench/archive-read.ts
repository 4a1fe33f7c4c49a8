/**
 * Read throughput from the RocksDB buffer and from the archive (s3rver), and the cost
 * of reading the last 64 KiB of a large archived log: time, and bytes moved from the
 * store (counted by a proxy in front of s3rver).
 *
 *   node --import tsx test/bench/archive-read.ts [--mb 1024]
 */
import { parseArgs } from "node:util";
import { Result } from "../../gen/joblog/v1/log_pb.js";
import { ciLine } from "../helpers/expected-jsonl.js";
import { startTestLeader } from "../helpers/leader-fixture.js";
import { createGrpcLogClient, type LogClient, messages } from "../helpers/log-service-client.js";
import { startS3Proxy } from "../helpers/s3-proxy.js";
import { S3RVER_CREDENTIALS, startS3Server } from "../helpers/s3-server.js";

const { values } = parseArgs({ options: { mb: { type: "string", default: "256" } } });
const targetBytes = Number(values.mb) * 1024 * 1024;
const LINES_PER_BATCH = 5000;
const TS = Date.UTC(2025, 1, 12);

async function readThrough(client: LogClient, runId: string, task: string, length: number): Promise<number> {
  const started = performance.now();
  let offset = 0n;
  for (let i = 0; i < 1_000_000 && Number(offset) < length; i++) {
    offset = (await client.read({ runId, task, offset, maxBytes: 1024 * 1024 })).nextOffset;
  }
  return length / 1024 / 1024 / ((performance.now() - started) / 1000);
}

const s3 = await startS3Server();
const proxy = await startS3Proxy(s3.port);
const f = await startTestLeader({
  log_storage: {
    flush_interval_ms: 3_600_000,
    archive: { type: "s3", bucket: s3.bucket, endpoint: proxy.endpoint, ...S3RVER_CREDENTIALS },
  },
});
const g = createGrpcLogClient(f.url);
try {
  const runId = "bench-archive";
  const batch = {
    firstSeq: 1n,
    baseTsUnixMs: BigInt(TS),
    lines: Array.from({ length: LINES_PER_BATCH }, (_, i) => ({ text: Buffer.from(ciLine("big", i)), tsOffsetMs: i })),
  };
  let length = 0;
  const ingestStart = performance.now();
  for (let seq = 1; length < targetBytes; seq += LINES_PER_BATCH) {
    const res = await g.client.push(messages({ task: { runId, task: "big" }, batch: { ...batch, firstSeq: BigInt(seq) } }));
    length = Number(res.length);
  }
  const ingestS = (performance.now() - ingestStart) / 1000;
  console.log(`log: ${(length / 1024 / 1024).toFixed(0)} MiB ingested in ${ingestS.toFixed(1)} s`);
  console.log(`read from RocksDB: ${(await readThrough(g.client, runId, "big", length)).toFixed(0)} MB/s`);

  const archiveStart = performance.now();
  await g.client.push(messages({ task: { runId, task: "big" }, complete: { result: Result.SUCCEEDED, exitCode: 0 } }));
  await g.client.completeRun({ runId, result: Result.SUCCEEDED });
  for (let i = 0; i < 6000; i++) {
    if (f.logs.length > 0) break;
    const keys = proxy.requests().filter((q) => q.startsWith("PUT") && q.includes(".index.json"));
    if (keys.length > 0) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  console.log(`archived (segment upload, verify, drop, run object): ${((performance.now() - archiveStart) / 1000).toFixed(1)} s`);
  for (const line of f.logs) console.log(`leader: ${line}`);

  const from = BigInt(length - 65536);
  for (const label of ["cold (index fetched)", "warm (index cached)"]) {
    proxy.reset();
    const t = performance.now();
    const r = await g.client.read({ runId, task: "big", offset: from, maxBytes: 65536 });
    const ms = performance.now() - t;
    console.log(
      `last 64 KiB, ${label}: ${ms.toFixed(1)} ms, ${proxy.bytesDown()} bytes from the store in ${proxy.requests().length} requests, got ${r.data.length} bytes`,
    );
  }
  proxy.reset();
  console.log(
    `read from the archive (s3rver): ${(await readThrough(g.client, runId, "big", length)).toFixed(0)} MB/s (${proxy.bytesDown()} bytes from the store)`,
  );
} finally {
  g.close();
  await f.dispose();
  await proxy.close();
  await s3.close();
}
