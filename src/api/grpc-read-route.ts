import type http2 from "node:http2";
import { LogService, type ReadRequest, ReadRequestSchema } from "../../gen/joblog/v1/log_pb.js";
import type { StreamAdmission } from "../auth/rpc-auth-interceptor.js";
import type { LogRead } from "../read/log-reader.js";
import {
  decodeRequest,
  type HttpRequest,
  type HttpResponse,
  headerValue,
  isPlainGrpcCall,
  readSingleMessage,
  serveGrpcCall,
} from "./grpc-call.js";
import { framedMessageParts } from "./grpc-message-parts.js";

/**
 * Read over gRPC without connect-node: the answer's log bytes (up to
 * `limits.read_max_bytes`, 1 MiB) are written as they are around the frame
 * header and fields, where connect serialized them (a copy) and framed them
 * (another). Same handler, checks, limits and status codes as through connect
 * (see grpc-push-route.ts).
 */

const PATH = `/${LogService.typeName}/${LogService.method.read.name}`;

export interface GrpcReadOptions {
  /** The LogService's Read as a log read, errors already mapped to ConnectError. */
  read(request: ReadRequest): Promise<LogRead>;
  /** Authenticates the caller (throws a ConnectError to refuse it). */
  admit(authorization: string | undefined): StreamAdmission<ReadRequest>;
  maxMessageBytes: number;
}

/** A handler that serves gRPC Read calls and returns false for any other request. */
export function grpcReadRoute(options: GrpcReadOptions): (req: HttpRequest, res: HttpResponse) => boolean {
  return (req, res) => {
    if (!isPlainGrpcCall(req, PATH)) return false;
    void serveGrpcCall(req, res as http2.Http2ServerResponse, async (call) => {
      const admission = options.admit(headerValue(req.headers.authorization));
      const request = decodeRequest(ReadRequestSchema, await readSingleMessage(req, options.maxMessageBytes, call.signal));
      await admission.check?.(request);
      await call.send(readResponseParts(await options.read(request)));
    });
    return true;
  };
}

/** A ReadResponse framed for gRPC, its log bytes not copied (framedMessageParts). */
export function readResponseParts(read: LogRead): Uint8Array[] {
  return framedMessageParts([[1, read.offset]], 2, read.data, [
    [3, read.nextOffset],
    [4, read.length],
    [5, read.complete],
  ]);
}
