import type http from "node:http";
import type http2 from "node:http2";
import { type DescMessage, fromBinary, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type { StreamAdmission } from "../auth/rpc-auth-interceptor.js";
import { type ErrorLogger, toConnectError } from "./error-mapping.js";

/**
 * gRPC calls served without connect-node (the Push, Tail and Read routes): the framing and
 * status of the gRPC protocol over a Node HTTP/2 request, the way connect-node
 * answers them, for the hot RPCs whose per-message cost matters.
 */

export type HttpRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type HttpResponse = http.ServerResponse | http2.Http2ServerResponse;

const GRPC_CONTENT_TYPE = /^application\/grpc(?:\+proto)?(?:;.*)?$/i;
export const FRAME_HEADER_BYTES = 5;
/** As connect-node's default: a longer deadline is refused. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** A gRPC call on `path` with protobuf messages and no message compression: one the routes can serve. */
function isPlainGrpcCall(req: HttpRequest, path: string): req is http2.Http2ServerRequest {
  if (req.httpVersionMajor !== 2 || req.method !== "POST" || req.url !== path) return false;
  if (!GRPC_CONTENT_TYPE.test(req.headers["content-type"] ?? "")) return false;
  const encoding = req.headers["grpc-encoding"];
  return encoding === undefined || encoding === "identity";
}

/** A handler that serves its gRPC calls and returns false for any other request. */
export type GrpcRoute = (req: HttpRequest, res: HttpResponse) => boolean;

/** What every gRPC route is given besides its handler. */
export interface GrpcRouteOptions<M> {
  /** Authenticates the caller and, for a stream, counts it (throws a ConnectError to refuse it). */
  admit(authorization: string | undefined): StreamAdmission<M>;
  maxMessageBytes: number;
  /** Where a failure that is not a ConnectError (a fault of the route itself) is reported before it is answered INTERNAL. */
  log: ErrorLogger;
}

/** The route serving `path`: `body` runs as the call's handler (serveGrpcCall). */
export function grpcRoute(
  path: string,
  log: ErrorLogger,
  body: (req: http2.Http2ServerRequest, call: GrpcCall) => Promise<void>,
): GrpcRoute {
  return (req, res) => {
    if (!isPlainGrpcCall(req, path)) return false;
    void serveGrpcCall(req, res as http2.Http2ServerResponse, log, (call) => body(req, call));
    return true;
  };
}

/**
 * The one request of a Tail or Read call, admitted and scope-checked; `release`
 * gives back its place under the stream limits once the call is done.
 */
export async function admittedRequest<Desc extends DescMessage>(
  req: http2.Http2ServerRequest,
  call: GrpcCall,
  schema: Desc,
  options: GrpcRouteOptions<MessageShape<Desc>>,
): Promise<{ request: MessageShape<Desc>; release(): void }> {
  const admission = options.admit(headerValue(req.headers.authorization));
  try {
    const request = decodeRequest(schema, await readSingleMessage(req, options.maxMessageBytes, call.signal));
    await admission.check?.(request);
    return { request, release: admission.release };
  } catch (err) {
    admission.release();
    throw err;
  }
}

export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

export interface GrpcCall {
  /** Aborted when the client goes away before the answer, or at its deadline (the reason is the ConnectError). */
  signal: AbortSignal;
  /** Sends one response message, given as parts that are written in order without being joined; resolves once the stream can take more. */
  send(parts: readonly Uint8Array[]): Promise<void>;
}

/**
 * Runs `body` as the call's handler: headers go with the first message, the
 * status (OK, or the ConnectError thrown, anything else being INTERNAL) in the
 * trailers. Nothing is sent once the client has gone.
 */
async function serveGrpcCall(
  req: http2.Http2ServerRequest,
  res: http2.Http2ServerResponse,
  log: ErrorLogger,
  body: (call: GrpcCall) => Promise<void>,
): Promise<void> {
  const contentType = req.headers["content-type"] as string;
  const aborted = new AbortController();
  // The compat response reports itself finished on any close, so a flag says whether it was answered.
  let answered = false;
  const onClose = () => {
    if (!answered) aborted.abort(new ConnectError("the client closed the stream before it ended", Code.Canceled));
  };
  res.once("close", onClose);
  let deadline: NodeJS.Timeout | undefined;
  const call: GrpcCall = {
    signal: aborted.signal,
    async send(parts) {
      if (res.destroyed) throw aborted.signal.reason ?? new ConnectError("the client closed the stream before it ended", Code.Canceled);
      if (!res.headersSent) res.writeHead(200, { "content-type": contentType });
      let room = true;
      for (const part of parts) room = res.write(part);
      // connect-node's listener wrapper (listener.ts) emits 'drain' when a response closes unfinished.
      if (!room) await new Promise((resolve) => res.once("drain", resolve));
    },
  };
  let error: ConnectError | undefined;
  try {
    const timeout = parseTimeout(headerValue(req.headers["grpc-timeout"]) ?? null, MAX_TIMEOUT_MS);
    if (timeout.error) throw timeout.error;
    if (timeout.timeoutMs !== undefined) {
      deadline = setTimeout(() => aborted.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeout.timeoutMs);
    }
    await body(call);
  } catch (err) {
    error = toConnectError(err, log);
  } finally {
    // A handler that stops at its deadline ends quietly (a tail returns); the status still says why.
    if (error === undefined && aborted.signal.reason instanceof ConnectError) error = aborted.signal.reason;
    answered = true;
    clearTimeout(deadline);
    res.off("close", onClose);
  }
  if (res.destroyed || res.writableEnded) return;
  if (!res.headersSent) res.writeHead(200, { "content-type": contentType });
  const trailers: Record<string, string> = {};
  setTrailerStatus(new Headers(), error).forEach((value, key) => {
    trailers[key] = value;
  });
  res.addTrailers(trailers);
  res.end();
}

/** The 5-byte gRPC frame header of an uncompressed message of `length` bytes. */
export function frameHeader(length: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header[0] = 0;
  header.writeUInt32BE(length, 1);
  return header;
}

/** The length a frame header at `at` announces; refused when the frame is compressed or over the limit. */
export function frameLength(bytes: Buffer, at: number, maxMessageBytes: number): number {
  if (((bytes[at] as number) & 0x01) !== 0) {
    throw new ConnectError("protocol error: received a compressed message without grpc-encoding", Code.InvalidArgument);
  }
  const length = bytes.readUInt32BE(at + 1);
  if (length > maxMessageBytes) throw messageTooLarge(length, maxMessageBytes);
  return length;
}

/** RESOURCE_EXHAUSTED naming the limit, worded as connect-node's refusal is after toConnectError. */
function messageTooLarge(bytes: number, maxMessageBytes: number): ConnectError {
  return new ConnectError(
    `message size ${bytes} is larger than limit ${maxMessageBytes} (limits.max_message_bytes)`,
    Code.ResourceExhausted,
  );
}

/** The one message of a call with a single request: the whole body, which must be exactly one frame. */
function readSingleMessage(req: http2.Http2ServerRequest, maxMessageBytes: number, signal: AbortSignal): Promise<Buffer> {
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
      if (bytes > maxMessageBytes + FRAME_HEADER_BYTES) done(messageTooLarge(bytes - FRAME_HEADER_BYTES, maxMessageBytes));
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

/** A request message; INVALID_ARGUMENT naming the message when the bytes are not one. */
export function decodeRequest<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array): MessageShape<Desc> {
  try {
    return fromBinary(schema, bytes);
  } catch (err) {
    throw new ConnectError(`cannot decode the ${schema.name}: ${err instanceof Error ? err.message : String(err)}`, Code.InvalidArgument);
  }
}
