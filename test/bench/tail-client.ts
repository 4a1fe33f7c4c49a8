/**
 * Benchmark client: `--subscribers` concurrent Tail streams of one task from
 * offset 0 to its completion, over @grpc/grpc-js. Counts the records each
 * receives; with `--latency` also how long after its timestamp (set by the
 * pushing client at send time) each record arrived, counting only records sent
 * after the subscriber's first message: earlier ones are history it caught up
 * on while its process and subscription started, not live delivery. Prints one JSON line.
 */
import { parseArgs } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { TailRequestSchema, TailResponseSchema } from "../../gen/joblog/v1/log_pb.js";
import { parseLeaderUrl } from "../../src/client/leader-url.js";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    run: { type: "string" },
    task: { type: "string", default: "t0" },
    subscribers: { type: "string", default: "10" },
    latency: { type: "boolean", default: false },
    /** Subscribe before the task exists: retry NOT_FOUND every few milliseconds. */
    wait: { type: "boolean", default: false },
  },
});
const address = parseLeaderUrl(values.url as string);
const subscribers = Number(values.subscribers);
const TAIL = "/joblog.v1.LogService/Tail";
const NEWLINE = 0x0a;
const TS_AT = '{"ts":"'.length;

const client = new grpc.Client(address.target, grpc.credentials.createInsecure(), {
  "grpc.max_receive_message_length": 16 * 1024 * 1024,
  // As joblog's own client (LeaderClient): with HTTP/2's default 64 KiB window a 1 MiB message waits for 16 window updates.
  "grpc-node.flow_control_window": 4 * 1024 * 1024,
});
const latencies: number[] = [];
let firstByteAt = 0;

async function subscribe(): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await subscribeOnce();
    } catch (err) {
      const notYet = (err as grpc.ServiceError).code === grpc.status.NOT_FOUND && values.wait && attempt < 2000;
      if (!notYet) throw err;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}

function subscribeOnce(): Promise<number> {
  return new Promise((resolve, reject) => {
    let lines = 0;
    const request = Buffer.from(
      toBinary(TailRequestSchema, create(TailRequestSchema, { runId: values.run ?? "", task: values.task ?? "t0" })),
    );
    const call = client.makeServerStreamRequest(
      TAIL,
      (b: Buffer) => b,
      (b: Buffer) => b,
      request,
      new grpc.Metadata(),
      {},
    );
    // Lines sent before this subscriber's first message are history it caught up on, not live latency.
    let liveFrom = 0;
    call.on("data", (bytes: Buffer) => {
      const now = Date.now();
      if (firstByteAt === 0) firstByteAt = performance.now();
      if (liveFrom === 0) liveFrom = now;
      const message = fromBinary(TailResponseSchema, bytes);
      const data = Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength);
      let at = 0;
      for (;;) {
        const nl = data.indexOf(NEWLINE, at);
        if (nl < 0) break;
        lines++;
        if (values.latency) {
          const sent = Date.parse(data.toString("latin1", at + TS_AT, at + TS_AT + 24));
          if (sent >= liveFrom) latencies.push(now - sent);
        }
        at = nl + 1;
      }
      if (message.complete) call.cancel();
    });
    call.on("error", (err: grpc.ServiceError) => (err.code === grpc.status.CANCELLED ? resolve(lines) : reject(err)));
    call.on("end", () => resolve(lines));
  });
}

const started = performance.now();
const counts = await Promise.all(Array.from({ length: subscribers }, () => subscribe()));
const ended = performance.now();
client.close();
latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))] ?? 0;
process.stdout.write(
  `${JSON.stringify({
    lines: counts.reduce((a, b) => a + b, 0),
    seconds: (ended - (firstByteAt || started)) / 1000,
    p50Ms: pct(50),
    p99Ms: pct(99),
  })}\n`,
);
