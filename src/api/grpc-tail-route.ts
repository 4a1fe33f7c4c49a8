import type http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { LogService, type TailRequest, TailRequestSchema } from "../../gen/joblog/v1/log_pb.js";
import type { StreamAdmission } from "../auth/rpc-auth-interceptor.js";
import type { LogRead } from "../read/log-reader.js";
import {
  FRAME_HEADER_BYTES,
  frameLength,
  type HttpRequest,
  type HttpResponse,
  headerValue,
  isPlainGrpcCall,
  serveGrpcCall,
} from "./grpc-call.js";

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
        const request = decodeTailRequest(await singleMessage(req, options.maxMessageBytes, call.signal));
        await admission.check?.(request);
        for await (const read of options.tail(request, call.signal)) await call.send(tailResponseParts(read));
      } finally {
        admission.release();
      }
    });
    return true;
  };
}

function decodeTailRequest(bytes: Buffer): TailRequest {
  try {
    return fromBinary(TailRequestSchema, bytes);
  } catch (err) {
    throw new ConnectError(`cannot decode the TailRequest: ${err instanceof Error ? err.message : String(err)}`, Code.InvalidArgument);
  }
}

/** The one message of a call with a single request: the whole body, which must be exactly one frame. */
function singleMessage(req: http2.Http2ServerRequest, maxMessageBytes: number, signal: AbortSignal): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const done = (err: unknown, body?: Buffer) => {
      req.off("data", onData);
      req.off("end", onEnd);
      signal.removeEventListener("abort", onAbort);
      if (err) reject(err);
      else resolve(body as Buffer);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      bytes += chunk.length;
      if (bytes > maxMessageBytes + FRAME_HEADER_BYTES) {
        done(
          new ConnectError(
            `message size ${bytes} is larger than limit ${maxMessageBytes} (limits.max_message_bytes)`,
            Code.ResourceExhausted,
          ),
        );
      }
    };
    const onEnd = () => {
      const body = Buffer.concat(chunks, bytes);
      try {
        if (body.length < FRAME_HEADER_BYTES) throw new ConnectError("protocol error: missing request message", Code.InvalidArgument);
        const length = frameLength(body, 0, maxMessageBytes);
        if (body.length !== FRAME_HEADER_BYTES + length) {
          throw new ConnectError("protocol error: expected exactly one request message", Code.InvalidArgument);
        }
        done(undefined, body.subarray(FRAME_HEADER_BYTES));
      } catch (err) {
        done(err);
      }
    };
    const onAbort = () => done(signal.reason);
    req.on("data", onData);
    req.once("end", onEnd);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

// TailResponse's fields as protobuf's wire format has them: (field number << 3) | wire type.
const OFFSET_TAG = (1 << 3) | 0;
const DATA_TAG = (2 << 3) | 2;
const NEXT_OFFSET_TAG = (3 << 3) | 0;
const COMPLETE_TAG = (4 << 3) | 0;

/**
 * A TailResponse framed for gRPC as three parts: the frame header with the
 * fields before `data`, the log bytes themselves (not copied), and the fields
 * after. Byte for byte what protobuf-es encodes (fields in order, defaults left out).
 */
export function tailResponseParts(read: Pick<LogRead, "offset" | "data" | "nextOffset" | "complete">): Uint8Array[] {
  const head: number[] = [];
  if (read.offset !== 0) pushField(head, OFFSET_TAG, read.offset);
  if (read.data.length > 0) pushField(head, DATA_TAG, read.data.length);
  const tail: number[] = [];
  if (read.nextOffset !== 0) pushField(tail, NEXT_OFFSET_TAG, read.nextOffset);
  if (read.complete) pushField(tail, COMPLETE_TAG, 1);
  const length = head.length + read.data.length + tail.length;
  const first = Buffer.allocUnsafe(FRAME_HEADER_BYTES + head.length);
  first[0] = 0;
  first.writeUInt32BE(length, 1);
  first.set(head, FRAME_HEADER_BYTES);
  const parts: Uint8Array[] = [first];
  if (read.data.length > 0) parts.push(read.data);
  if (tail.length > 0) parts.push(Uint8Array.from(tail));
  return parts;
}

/** A tag and a varint; `value` is a non-negative safe integer (offsets stay below 2^53). */
function pushField(out: number[], tag: number, value: number): void {
  out.push(tag);
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}
