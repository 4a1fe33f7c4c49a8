import type http2 from "node:http2";
import { LogService, type TailRequest, TailRequestSchema } from "../../gen/joblog/v1/log_pb.js";
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
 * Tail over gRPC without connect-node: each message is written as its frame
 * header and fields around the log bytes, which go out as they are. Through
 * connect every subscriber's message was serialized (a copy of the bytes), then
 * framed (another copy), in a handful of async stages; ten subscribers of one
 * busy task copied its output twenty times. Same handler, checks, limits and
 * status codes as through connect (see grpc-push-route.ts).
 */

const PATH = `/${LogService.typeName}/${LogService.method.tail.name}`;

export interface GrpcTailOptions {
  /** The LogService's Tail as log reads, errors already mapped to ConnectError. */
  tail(request: TailRequest, signal: AbortSignal): AsyncIterable<LogRead>;
  /** Authenticates and counts the subscriber (throws a ConnectError to refuse it). */
  admit(authorization: string | undefined): StreamAdmission<TailRequest>;
  maxMessageBytes: number;
}

/** A handler that serves gRPC Tail calls and returns false for any other request. */
export function grpcTailRoute(options: GrpcTailOptions): (req: HttpRequest, res: HttpResponse) => boolean {
  return (req, res) => {
    if (!isPlainGrpcCall(req, PATH)) return false;
    void serveGrpcCall(req, res as http2.Http2ServerResponse, async (call) => {
      const admission = options.admit(headerValue(req.headers.authorization));
      try {
        const request = decodeRequest(TailRequestSchema, await readSingleMessage(req, options.maxMessageBytes, call.signal));
        await admission.check?.(request);
        for await (const read of options.tail(request, call.signal)) await call.send(tailResponseParts(read));
      } finally {
        admission.release();
      }
    });
    return true;
  };
}

/** A TailResponse framed for gRPC, its log bytes not copied (framedMessageParts). */
export function tailResponseParts(read: Pick<LogRead, "offset" | "data" | "nextOffset" | "complete">): Uint8Array[] {
  return framedMessageParts([[1, read.offset]], 2, read.data, [
    [3, read.nextOffset],
    [4, read.complete],
  ]);
}
