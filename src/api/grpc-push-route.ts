import type http2 from "node:http2";
import { toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { LogService, type PushRequest, PushRequestSchema, type PushResponse, PushResponseSchema } from "../../gen/joblog/v1/log_pb.js";
import {
  decodeRequest,
  FRAME_HEADER_BYTES,
  frameHeader,
  frameLength,
  type GrpcRoute,
  type GrpcRouteOptions,
  grpcRoute,
  headerValue,
} from "./grpc-call.js";

/**
 * Push over gRPC (what workers speak) without connect-node's per-message
 * pipeline. Through connect, each batch passed half a dozen async-generator
 * stages, each with its promises and closures; with 1,000 streams sending small
 * batches that garbage was most of the leader's allocation, and the batches'
 * pipeline state, alive until the next batch a second later, survived into the
 * old generation (scavenges of 16-40 ms). Here the request's HTTP/2 DATA feeds a
 * queue of decoded messages that the handler pulls from directly.
 *
 * The same handler, the same checks (token, role, scope, stream quota), the
 * same limits and the same status codes as through connect: only the framing
 * is done here. Compressed requests, Connect and gRPC-Web go to connect-node.
 */

const PATH = `/${LogService.typeName}/${LogService.method.push.name}`;
/** Decoded messages held ahead of the handler before the stream stops reading (HTTP/2 flow control then holds the client). */
const QUEUED_MESSAGES = 4;

export interface GrpcPushOptions extends GrpcRouteOptions<PushRequest> {
  /** The LogService's Push, errors already mapped to ConnectError. */
  push(requests: AsyncIterable<PushRequest>, ctx: { signal: AbortSignal }): Promise<PushResponse>;
}

export function grpcPushRoute(options: GrpcPushOptions): GrpcRoute {
  return grpcRoute(PATH, options.log, async (req, call) => {
    const admission = options.admit(headerValue(req.headers.authorization));
    const messages = new GrpcMessages(req, options.maxMessageBytes, call.signal, admission.check);
    try {
      const response = toBinary(PushResponseSchema, await options.push(messages, { signal: call.signal }));
      await call.send([frameHeader(response.byteLength), response]);
    } finally {
      messages.close();
      admission.release();
    }
  });
}

/**
 * The request's messages as an async iterator: gRPC length-prefixed frames cut
 * from the DATA chunks as they arrive, decoded, checked, and queued; the stream
 * pauses while QUEUED_MESSAGES wait, so a handler that is behind holds the client
 * back through HTTP/2 flow control instead of buffering here.
 */
class GrpcMessages implements AsyncIterableIterator<PushRequest> {
  private readonly queue: PushRequest[] = [];
  private waiter: { resolve(r: IteratorResult<PushRequest>): void; reject(err: unknown): void } | undefined;
  /** The client ended its side. */
  private ended = false;
  /** The handler is done with the stream. */
  private closed = false;
  /** Why the stream cannot go on; the handler maps it to a status (and logs what is not a ConnectError). */
  private failure: unknown;
  private failed = false;
  /** The frame being assembled: its header bytes so far, then its message bytes. */
  private readonly header = Buffer.alloc(FRAME_HEADER_BYTES);
  private headerFill = 0;
  private body: Buffer | undefined;
  private bodyFill = 0;
  /** Scope checks run one at a time and in order, so messages reach the handler in order. */
  private checking: Promise<void> = Promise.resolve();
  private pendingChecks = 0;

  constructor(
    private readonly req: http2.Http2ServerRequest,
    private readonly maxMessageBytes: number,
    private readonly signal: AbortSignal,
    private readonly check: ((message: PushRequest) => Promise<unknown>) | undefined,
  ) {
    req.on("data", this.onData);
    req.once("end", this.onEnd);
    signal.addEventListener("abort", this.onAbort, { once: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<PushRequest>> {
    const message = this.queue.shift();
    if (message) {
      if (this.queue.length < QUEUED_MESSAGES && this.req.isPaused()) this.req.resume();
      return Promise.resolve({ done: false, value: message });
    }
    if (this.failed) return Promise.reject(this.failure);
    if (this.closed || (this.ended && this.pendingChecks === 0)) return Promise.resolve({ done: true, value: undefined });
    if (this.req.isPaused()) this.req.resume();
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** The handler is done (it answered, or gave up): whatever else the client sends is read and dropped. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.req.off("data", this.onData);
    this.req.off("end", this.onEnd);
    this.signal.removeEventListener("abort", this.onAbort);
    // Flowing with no listener drops the data: a client still sending is not held by flow control until it sees the status.
    this.req.resume();
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.failed) return;
    try {
      let at = 0;
      while (at < chunk.length) {
        if (this.body === undefined) {
          // A whole frame inside this chunk, the common case for small batches: decoded in place.
          if (this.headerFill === 0 && chunk.length - at >= FRAME_HEADER_BYTES) {
            const length = frameLength(chunk, at, this.maxMessageBytes);
            if (chunk.length - at - FRAME_HEADER_BYTES >= length) {
              this.deliver(chunk.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length));
              at += FRAME_HEADER_BYTES + length;
              continue;
            }
          }
          const take = Math.min(FRAME_HEADER_BYTES - this.headerFill, chunk.length - at);
          chunk.copy(this.header, this.headerFill, at, at + take);
          this.headerFill += take;
          at += take;
          if (this.headerFill < FRAME_HEADER_BYTES) break;
          // Frames span DATA chunks of 16 KiB: assembled with one copy each, not concatenated chunk by chunk.
          this.body = Buffer.allocUnsafe(frameLength(this.header, 0, this.maxMessageBytes));
          this.bodyFill = 0;
        }
        const take = Math.min(this.body.length - this.bodyFill, chunk.length - at);
        chunk.copy(this.body, this.bodyFill, at, at + take);
        this.bodyFill += take;
        at += take;
        if (this.bodyFill === this.body.length) {
          const body = this.body;
          this.body = undefined;
          this.headerFill = 0;
          this.deliver(body);
        }
      }
    } catch (err) {
      this.fail(err);
    }
  };

  private deliver(bytes: Buffer): void {
    const message = decodeRequest(PushRequestSchema, bytes);
    if (!this.check) {
      this.enqueue(message);
      return;
    }
    const check = this.check;
    this.pendingChecks++;
    this.checking = this.checking
      .then(() => check(message))
      .then(
        () => {
          this.pendingChecks--;
          this.enqueue(message);
          if (this.ended && this.pendingChecks === 0) this.finishWaiter();
        },
        (err: unknown) => {
          this.pendingChecks--;
          this.fail(err);
        },
      );
  }

  private enqueue(message: PushRequest): void {
    if (this.failed || this.closed) return;
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      waiter.resolve({ done: false, value: message });
      return;
    }
    this.queue.push(message);
    if (this.queue.length >= QUEUED_MESSAGES) this.req.pause();
  }

  private readonly onEnd = (): void => {
    if (this.body !== undefined || this.headerFill > 0) {
      this.fail(new ConnectError("protocol error: the request ended inside a message", Code.InvalidArgument));
      return;
    }
    this.ended = true;
    if (this.pendingChecks === 0) this.finishWaiter();
  };

  /** Ends a waiting next(): every message was delivered. */
  private finishWaiter(): void {
    const waiter = this.waiter;
    if (!waiter || this.queue.length > 0 || this.failed) return;
    this.waiter = undefined;
    waiter.resolve({ done: true, value: undefined });
  }

  private readonly onAbort = (): void => {
    this.fail(this.signal.reason instanceof ConnectError ? this.signal.reason : new ConnectError("aborted", Code.Canceled));
  };

  private fail(err: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.failure = err;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(err);
  }
}
