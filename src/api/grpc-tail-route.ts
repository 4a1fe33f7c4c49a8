import { LogService, type TailRequest, TailRequestSchema } from "../../gen/joblog/v1/log_pb.js";
import type { LogRead } from "../read/log-reader.js";
import { admittedRequest, type GrpcRoute, type GrpcRouteOptions, grpcRoute } from "./grpc-call.js";
import { framedMessageParts } from "./grpc-message-parts.js";

/**
 * Tail over gRPC without connect-node: each message is written as its frame
 * header and fields around the log bytes, which go out as they are. Through
 * connect every subscriber's message was serialized (a copy of the bytes), then
 * framed (another copy), in a handful of async stages; ten subscribers of one
 * busy task copied its output twenty times. Same handler, checks, limits and
 * status codes as through connect (see grpc-push-route.ts).
 */

const PATH = `/${LogService.typeName}/${LogService.method.tail.name}`;

export interface GrpcTailOptions extends GrpcRouteOptions<TailRequest> {
  /** The LogService's Tail as log reads, errors already mapped to ConnectError. */
  tail(request: TailRequest, signal: AbortSignal): AsyncIterable<LogRead>;
}

export function grpcTailRoute(options: GrpcTailOptions): GrpcRoute {
  return grpcRoute(PATH, options.log, async (req, call) => {
    const { request, release } = await admittedRequest(req, call, TailRequestSchema, options);
    try {
      for await (const read of options.tail(request, call.signal)) await call.send(tailResponseParts(read));
    } finally {
      release();
    }
  });
}

/** A TailResponse framed for gRPC, its log bytes not copied (framedMessageParts). */
export function tailResponseParts(read: Pick<LogRead, "offset" | "data" | "nextOffset" | "complete">): Uint8Array[] {
  return framedMessageParts([[1, read.offset]], 2, read.data, [
    [3, read.nextOffset],
    [4, read.complete],
  ]);
}
