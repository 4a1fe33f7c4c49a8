import { LogService, type ReadRequest, ReadRequestSchema } from "../../gen/joblog/v1/log_pb.js";
import type { LogRead } from "../read/log-reader.js";
import { admittedRequest, type GrpcRoute, type GrpcRouteOptions, grpcRoute } from "./grpc-call.js";
import { framedMessageParts } from "./grpc-message-parts.js";

/**
 * Read over gRPC without connect-node: the answer's log bytes (up to
 * `limits.read_max_bytes`, 1 MiB) are written as they are around the frame
 * header and fields, where connect serialized them (a copy) and framed them
 * (another). Same handler, checks, limits and status codes as through connect
 * (see grpc-push-route.ts).
 */

const PATH = `/${LogService.typeName}/${LogService.method.read.name}`;

export interface GrpcReadOptions extends GrpcRouteOptions<ReadRequest> {
  /** The LogService's Read as a log read, errors already mapped to ConnectError. */
  read(request: ReadRequest): Promise<LogRead>;
}

export function grpcReadRoute(options: GrpcReadOptions): GrpcRoute {
  return grpcRoute(PATH, options.log, async (req, call) => {
    const { request, release } = await admittedRequest(req, call, ReadRequestSchema, options);
    try {
      await call.send(readResponseParts(await options.read(request)));
    } finally {
      release();
    }
  });
}

/** A ReadResponse framed for gRPC, its log bytes not copied (framedMessageParts). */
export function readResponseParts(read: LogRead): Uint8Array[] {
  return framedMessageParts([[1, read.offset]], 2, read.data, [
    [3, read.nextOffset],
    [4, read.length],
    [5, read.complete],
  ]);
}
