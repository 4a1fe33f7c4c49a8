import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  LogService,
  OpenTaskResponseSchema,
  PushResponseSchema,
  ReadResponseSchema,
  TailResponseSchema,
  TaskState,
} from "../../gen/joblog/v1/log_pb.js";
import { listen, type RequestHandler } from "../../src/api/listener.js";
import { baselineTailPayload } from "./bench-lines.js";

/**
 * The baseline the benchmarks divide by: the same stack as the leader (the
 * one-port listener, connect-node, protobuf-es decoding every message) with no
 * work behind it. Push decodes and counts lines; Tail streams pre-encoded
 * records as fast as the client takes them. Whatever the leader costs beyond
 * this is joblog's own.
 */
export async function startBareServer(): Promise<{ url: string; stop(): Promise<void> }> {
  let counted = 0;
  const service: Partial<ServiceImpl<typeof LogService>> = {
    async openTask() {
      return create(OpenTaskResponseSchema, { durableSeq: 0n, length: 0n, state: TaskState.RUNNING });
    },
    async push(requests) {
      let last = 0n;
      for await (const req of requests) {
        const lines = req.batch ? (req.batch.packed?.lengths.length ?? req.batch.lines.length) : 0;
        counted += lines;
        if (req.batch && lines > 0) last = req.batch.firstSeq + BigInt(lines) - 1n;
      }
      return create(PushResponseSchema, { durableSeq: last, length: 0n, completed: false });
    },
    async *tail(req, ctx) {
      // `run_id` carries the number of lines to send: `bare-<lines>`; any other run is an idle subscriber.
      if (!req.runId.startsWith("bare-")) {
        await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
        return;
      }
      const total = Number(req.runId.split("-")[1] ?? 0);
      const { data, lines } = baselineTailPayload();
      let sent = 0;
      let offset = 0n;
      while (sent < total) {
        yield create(TailResponseSchema, { offset, data, nextOffset: offset + BigInt(data.length), complete: false });
        offset += BigInt(data.length);
        sent += lines;
      }
      yield create(TailResponseSchema, { offset, data: new Uint8Array(0), nextOffset: offset, complete: true });
    },
    async read(req) {
      // A log of `bare-<bytes>` bytes, answered with the same pre-encoded records at every offset.
      const length = BigInt(req.runId.split("-")[1] ?? 0);
      const { data } = baselineTailPayload();
      const room = length - req.offset;
      const body = room <= 0n ? new Uint8Array(0) : room < BigInt(data.length) ? data.subarray(0, Number(room)) : data;
      const cap = req.maxBytes > 0 && req.maxBytes < body.length ? body.subarray(0, req.maxBytes) : body;
      return create(ReadResponseSchema, {
        offset: req.offset,
        data: cap,
        nextOffset: req.offset + BigInt(cap.length),
        length,
        complete: true,
      });
    },
  };
  const handler = connectNodeAdapter({
    routes: (router) => router.service(LogService, service),
    readMaxBytes: 4 * 1024 * 1024,
    writeMaxBytes: 4 * 1024 * 1024,
    acceptCompression: [],
  });
  const listener = await listen(handler as RequestHandler, "127.0.0.1", 0);
  return {
    url: `http://${listener.address}`,
    async stop() {
      listener.stopAccepting();
      listener.closeAll();
      process.stderr.write(`bare server counted ${counted} lines\n`);
    },
  };
}
