/**
 * Benchmark client: `--streams` concurrent Push streams, each to its own task,
 * sending pre-encoded batches of realistic lines through @grpc/grpc-js as fast
 * as flow control allows (or at `--rate` lines/s in total), ending each stream
 * after `--stream-bytes` to collect its acknowledgement as the worker does.
 * Prints one JSON line: lines acknowledged and the seconds from the first send
 * to the last acknowledgement.
 */
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { parseLeaderUrl } from "../../src/client/leader-url.js";
import { completionFrame, encodedLinesField, pushFrame, pushOpening } from "./bench-lines.js";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    streams: { type: "string", default: "1" },
    lines: { type: "string", default: "1000000" },
    batch: { type: "string", default: "1000" },
    run: { type: "string", default: "bench" },
    rate: { type: "string", default: "0" },
    "stream-bytes": { type: "string", default: String(8 * 1024 * 1024) },
    connections: { type: "string", default: "1" },
    complete: { type: "boolean", default: false },
    form: { type: "string", default: "packed" },
  },
});
const streams = Number(values.streams);
const perStream = Math.floor(Number(values.lines) / streams);
const batchLines = Number(values.batch);
const rate = Number(values.rate);
const streamBytes = Number(values["stream-bytes"]);
const address = parseLeaderUrl(values.url as string);
const PUSH = "/joblog.v1.LogService/Push";
const identity = (b: Buffer) => b;
const paced = rate > 0;
const linesField = encodedLinesField(batchLines, !paced, values.form === "lines" ? "lines" : "packed");

const clients = Array.from(
  { length: Number(values.connections) },
  (_, i) =>
    new grpc.Client(address.target, grpc.credentials.createInsecure(), {
      "grpc.max_send_message_length": 16 * 1024 * 1024,
      // Distinct options keep grpc-js from sharing one connection between the clients.
      "grpc.primary_user_agent": `bench-${i}`,
    }),
);

function openStream(client: grpc.Client, run: string, task: string) {
  let settle: (err: grpc.ServiceError | null) => void = () => {};
  const done = new Promise<void>((resolve, reject) => {
    settle = (err) => (err ? reject(err) : resolve());
  });
  const call = client.makeClientStreamRequest(PUSH, identity, identity, new grpc.Metadata(), {}, (err) => settle(err));
  call.write(pushOpening(run, task));
  return { call, done };
}

async function pushTask(index: number): Promise<number> {
  const client = clients[index % clients.length] as grpc.Client;
  const task = `t${index}`;
  let seq = 1;
  let sent = 0;
  const started = performance.now();
  while (sent < perStream) {
    const { call, done } = openStream(client, values.run as string, task);
    let bytes = 0;
    while (sent < perStream && bytes < streamBytes) {
      const frame = pushFrame(seq, linesField, Date.now());
      seq += batchLines;
      sent += batchLines;
      bytes += frame.length;
      if (!call.write(frame)) await new Promise((resolve) => call.once("drain", resolve));
      if (paced) {
        // Each stream's share of the rate, batch by batch, against the clock.
        const due = started + (sent / (rate / streams)) * 1000;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
    if (values.complete && sent >= perStream) call.write(completionFrame());
    call.end();
    await done;
  }
  return sent;
}

const started = performance.now();
const counts = await Promise.all(Array.from({ length: streams }, (_, i) => pushTask(i)));
const seconds = (performance.now() - started) / 1000;
for (const client of clients) client.close();
process.stdout.write(`${JSON.stringify({ lines: counts.reduce((a, b) => a + b, 0), seconds })}\n`);
