import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { TailRequestSchema } from "../../gen/joblog/v1/log_pb.js";
import { sample } from "./metrics-sample.js";

/**
 * A Tail whose client never reads a byte: a raw HTTP/2 gRPC call, paused from the
 * start, so it grants the leader no flow-control window past the first 64 KiB. (A
 * grpc-js call left unread still buffers 16 messages of up to 1 MiB each, so over a
 * 13 MB log it is a subscriber that reads nearly everything, not a stuck one.)
 */
export function neverReadingTail(url: string, runId: string, task: string): http2.ClientHttp2Session {
  const session = http2.connect(url);
  session.on("error", () => undefined);
  const stream = session.request({
    ":method": "POST",
    ":path": "/joblog.v1.LogService/Tail",
    "content-type": "application/grpc",
    te: "trailers",
  });
  stream.on("error", () => undefined);
  stream.pause();
  const message = toBinary(TailRequestSchema, create(TailRequestSchema, { runId, task, offset: 0n }));
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  stream.end(frame);
  return session;
}

/** Tail subscribers the leader has open, from its metrics. */
export async function tailSubscribers(url: string): Promise<number> {
  return sample(await (await fetch(`${url}/metrics`)).text(), "joblog_tail_subscribers") ?? 0;
}
