/**
 * Benchmark client for scale: `--pushes` long-lived Push streams, each writing
 * a small batch of realistic lines to its own task every `--interval-ms`, and
 * `--tails` Tail subscribers on those tasks, spread over `--connections`
 * HTTP/2 connections, for `--seconds`. Prints lines sent and received.
 */
import { setMaxListeners } from "node:events";
import { parseArgs } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { TailRequestSchema, TailResponseSchema } from "../../gen/joblog/v1/log_pb.js";
import { parseLeaderUrl } from "../../src/client/leader-url.js";
import { encodedLinesField, pushFrame, pushOpening } from "./bench-lines.js";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    run: { type: "string", default: "scale" },
    pushes: { type: "string", default: "1000" },
    tails: { type: "string", default: "1000" },
    connections: { type: "string", default: "10" },
    "interval-ms": { type: "string", default: "1000" },
    "batch-lines": { type: "string", default: "10" },
    seconds: { type: "string", default: "10" },
    /** Start measuring once every Tail received its first message (a bare server's idle tails never do). */
    "wait-subscribed": { type: "boolean", default: false },
  },
});
const address = parseLeaderUrl(values.url as string);
const pushes = Number(values.pushes);
const tails = Number(values.tails);
const intervalMs = Number(values["interval-ms"]);
const batchLines = Number(values["batch-lines"]);
const run = values.run as string;
const identity = (b: Buffer) => b;
const linesField = encodedLinesField(batchLines);
const clients = Array.from(
  { length: Number(values.connections) },
  (_, i) => new grpc.Client(address.target, grpc.credentials.createInsecure(), { "grpc.primary_user_agent": `scale-${i}` }),
);
const clientFor = (i: number) => clients[i % clients.length] as grpc.Client;

let sent = 0;
let received = 0;
let errors = 0;
/** Tail subscribers that received their first message. */
let subscribed = 0;
const stop = new AbortController();
// Every stream listens for the stop: thousands of listeners by design, not a leak.
setMaxListeners(0, stop.signal);

async function pushLoop(i: number): Promise<void> {
  const done = new Promise<void>((resolve) => {
    const call = clientFor(i).makeClientStreamRequest("/joblog.v1.LogService/Push", identity, identity, new grpc.Metadata(), {}, (err) => {
      if (err) errors++;
      resolve();
    });
    call.write(pushOpening(run, `t${i}`));
    let seq = 1;
    // Spread the streams over the interval, as workers are.
    const timer = setTimeout(
      function tick() {
        if (stop.signal.aborted) {
          call.end();
          return;
        }
        call.write(pushFrame(seq, linesField, Date.now()));
        seq += batchLines;
        sent += batchLines;
        setTimeout(tick, intervalMs);
      },
      (i * intervalMs) / pushes,
    );
    stop.signal.addEventListener("abort", () => {
      clearTimeout(timer);
    });
  });
  await done;
}

/** One Tail subscriber; NOT_FOUND (its task's first batch not committed yet) is retried for up to 30 s. */
async function tailLoop(i: number): Promise<void> {
  for (let attempt = 0; !stop.signal.aborted; attempt++) {
    const code = await tailOnce(i);
    if (code !== grpc.status.NOT_FOUND || attempt >= 150) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function tailOnce(i: number): Promise<grpc.status | undefined> {
  return new Promise((resolve) => {
    const request = Buffer.from(toBinary(TailRequestSchema, create(TailRequestSchema, { runId: run, task: `t${i % pushes}` })));
    const call = clientFor(i + 1).makeServerStreamRequest(
      "/joblog.v1.LogService/Tail",
      identity,
      identity,
      request,
      new grpc.Metadata(),
      {},
    );
    let counted = false;
    call.on("data", (bytes: Buffer) => {
      if (!counted) {
        counted = true;
        subscribed++;
      }
      const data = fromBinary(TailResponseSchema, bytes).data;
      for (const b of data) if (b === 0x0a) received++;
    });
    call.on("error", (err: grpc.ServiceError) => {
      if (err.code !== grpc.status.CANCELLED && err.code !== grpc.status.NOT_FOUND) errors++;
      resolve(err.code);
    });
    call.on("end", () => resolve(undefined));
    stop.signal.addEventListener("abort", () => call.cancel());
  });
}

// Tails start after their tasks exist: the first batches create them.
const pushing = Array.from({ length: pushes }, (_, i) => pushLoop(i));
await new Promise((resolve) => setTimeout(resolve, intervalMs + 500));
const tailing = Array.from({ length: tails }, (_, i) => tailLoop(i));
// Measured once every subscriber has caught up and is live (or after 30 s): the steady state, not the start.
const subscribing = performance.now();
while (values["wait-subscribed"] && subscribed < tails && performance.now() - subscribing < 30_000)
  await new Promise((resolve) => setTimeout(resolve, 50));
const subscribeSeconds = (performance.now() - subscribing) / 1000;
process.stdout.write(`${JSON.stringify({ steady: true })}\n`);
await new Promise((resolve) => setTimeout(resolve, Number(values.seconds) * 1000));
stop.abort();
await Promise.all([...pushing, ...tailing]);
for (const c of clients) c.close();
process.stdout.write(`${JSON.stringify({ sent, received, errors, subscribed, subscribeSeconds })}\n`);
