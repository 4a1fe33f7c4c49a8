import { create, type DescMessage, fromBinary, type MessageInitShape, type MessageShape, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  AdminService,
  BackupRequestSchema,
  type BackupResponse,
  BackupResponseSchema,
  DeleteRunRequestSchema,
  DeleteRunResponseSchema,
  RotateKeysRequestSchema,
  RotateKeysResponseSchema,
} from "../../gen/joblog/v1/admin_pb.js";
import {
  CompleteRunRequestSchema,
  CompleteRunResponseSchema,
  GetRunRequestSchema,
  GetRunResponseSchema,
  ListRunsRequestSchema,
  ListRunsResponseSchema,
  LogService,
  OpenTaskRequestSchema,
  OpenTaskResponseSchema,
  type PushRequest,
  PushRequestSchema,
  type PushResponse,
  PushResponseSchema,
  ReadRequestSchema,
  ReadResponseSchema,
  TailRequestSchema,
  type TailResponse,
  TailResponseSchema,
} from "../../gen/joblog/v1/log_pb.js";
import { parseLeaderUrl } from "./leader-url.js";

export interface LeaderClientOptions {
  /** Largest message sent or received; match the leader's `limits.max_message_bytes`. */
  maxMessageBytes?: number;
  /** Deadline of unary calls. */
  unaryTimeoutMs?: number;
  /** Longest wait between connection attempts to an unreachable leader (default 5 s). */
  maxReconnectBackoffMs?: number;
  /** Bearer token sent as `authorization: Bearer …` on every call. */
  token?: string;
  /** PEM CA bundle to verify an `https://` leader with, instead of the system's roots. */
  ca?: Buffer;
  /** PEM client certificate and key, for a leader that requires mutual TLS. */
  clientCert?: Buffer;
  clientKey?: Buffer;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Deadline of this call, instead of the client's `unaryTimeoutMs`. */
  timeoutMs?: number;
}

/** A client-streaming Push call with Node-stream backpressure. */
export interface PushCall {
  /** Sends one message; false when the transport buffer is full (await `drained()`). */
  write(message: MessageInitShape<typeof PushRequestSchema>): boolean;
  drained(): Promise<void>;
  /** Half-closes the stream and resolves with the leader's response. */
  end(): Promise<PushResponse>;
  /**
   * Resolves when the leader has answered, which it may do before the stream ends
   * (a refused batch, a shutdown): a writer waiting for work must notice.
   */
  answered: Promise<void>;
  /** Cancels the call; the promise of `end()` rejects with CANCELLED. */
  cancel(): void;
}

const path = (method: keyof typeof LogService.method) => `/${LogService.typeName}/${LogService.method[method].name}`;

function serializer<D extends DescMessage>(schema: D) {
  return (message: MessageShape<D>) => Buffer.from(toBinary(schema, message));
}

function deserializer<D extends DescMessage>(schema: D) {
  return (bytes: Buffer) => fromBinary(schema, bytes);
}

/** Per stream and per connection: more than one Read answer at the leader's default read_max_bytes (1 MiB). */
const RECEIVE_WINDOW_BYTES = 4 * 1024 * 1024;

/**
 * A typed @grpc/grpc-js client for every LogService method: promises for unary
 * calls, async iterables for Tail, a writable for Push. Used by the worker and
 * the CLI.
 */
export class LeaderClient {
  private readonly client: grpc.Client;
  private readonly unaryTimeoutMs: number;
  private readonly token: string | undefined;

  constructor(leader: string, options: LeaderClientOptions = {}) {
    const address = parseLeaderUrl(leader);
    const maxBytes = options.maxMessageBytes ?? 4 * 1024 * 1024;
    this.unaryTimeoutMs = options.unaryTimeoutMs ?? 30_000;
    this.token = options.token;
    const credentials = address.tls
      ? grpc.credentials.createSsl(options.ca ?? null, options.clientKey ?? null, options.clientCert ?? null)
      : grpc.credentials.createInsecure();
    // Explicit on the client as on the leader (connect-node's readMaxBytes): grpc-js's own default
    // receive limit is 4 MiB and its send limit unbounded, so a leader configured otherwise would disagree.
    this.client = new grpc.Client(address.target, credentials, {
      "grpc.max_send_message_length": maxBytes,
      "grpc.max_receive_message_length": maxBytes,
      // Detects a dead leader on an idle connection without waiting for TCP timeouts.
      "grpc.keepalive_time_ms": 30_000,
      "grpc.keepalive_timeout_ms": 10_000,
      // grpc-js waits 1 s, growing to 120 s, before reconnecting after a refused connection, and
      // fails every call fast meanwhile: a leader back after a restart went unseen for ~10 s.
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": options.maxReconnectBackoffMs ?? 5_000,
      // HTTP/2's default 64 KiB receive window makes a 1 MiB Read answer wait for 16 window
      // updates, each a round trip through both event loops: reads ran at ~100 MB/s on loopback.
      "grpc-node.flow_control_window": RECEIVE_WINDOW_BYTES,
    });
  }

  openTask(request: MessageInitShape<typeof OpenTaskRequestSchema>, options?: CallOptions) {
    return this.unary(path("openTask"), OpenTaskRequestSchema, OpenTaskResponseSchema, request, options);
  }

  read(request: MessageInitShape<typeof ReadRequestSchema>, options?: CallOptions) {
    return this.unary(path("read"), ReadRequestSchema, ReadResponseSchema, request, options);
  }

  listRuns(request: MessageInitShape<typeof ListRunsRequestSchema>, options?: CallOptions) {
    return this.unary(path("listRuns"), ListRunsRequestSchema, ListRunsResponseSchema, request, options);
  }

  getRun(request: MessageInitShape<typeof GetRunRequestSchema>, options?: CallOptions) {
    return this.unary(path("getRun"), GetRunRequestSchema, GetRunResponseSchema, request, options);
  }

  completeRun(request: MessageInitShape<typeof CompleteRunRequestSchema>, options?: CallOptions) {
    return this.unary(path("completeRun"), CompleteRunRequestSchema, CompleteRunResponseSchema, request, options);
  }

  /** AdminService.RotateKeys: re-wraps every data key; allowed an hour unless told otherwise. */
  rotateKeys(options?: CallOptions) {
    const method = `/${AdminService.typeName}/${AdminService.method.rotateKeys.name}`;
    return this.unary(method, RotateKeysRequestSchema, RotateKeysResponseSchema, {}, { timeoutMs: 3_600_000, ...options });
  }

  /** AdminService.DeleteRun: deletes a completed run's logs, keys and archive objects; allowed 10 minutes unless told otherwise. */
  deleteRun(request: MessageInitShape<typeof DeleteRunRequestSchema>, options?: CallOptions) {
    const method = `/${AdminService.typeName}/${AdminService.method.deleteRun.name}`;
    return this.unary(method, DeleteRunRequestSchema, DeleteRunResponseSchema, request, { timeoutMs: 600_000, ...options });
  }

  push(): PushCall {
    let settle!: { resolve(r: PushResponse): void; reject(e: unknown): void };
    const result = new Promise<PushResponse>((resolve, reject) => {
      settle = { resolve, reject };
    });
    result.catch(() => undefined); // surfaced through end(); a cancelled call need not be awaited
    const call = this.client.makeClientStreamRequest(
      path("push"),
      serializer(PushRequestSchema),
      deserializer(PushResponseSchema),
      this.metadata(),
      {},
      (err: grpc.ServiceError | null, response?: PushResponse) => {
        if (err) settle.reject(withReadableDetails(err));
        else settle.resolve(response as PushResponse);
      },
    );
    return {
      write: (message) => call.write(create(PushRequestSchema, message) as PushRequest),
      drained: () =>
        new Promise<void>((resolve) => {
          // Either the transport drains or the call ends; whichever comes first.
          let settled = false;
          const done = () => {
            if (settled) return;
            settled = true;
            call.off("drain", done);
            resolve();
          };
          call.once("drain", done);
          result.then(done, done);
        }),
      end: () => {
        call.end();
        return result;
      },
      answered: result.then(
        () => undefined,
        () => undefined,
      ),
      cancel: () => call.cancel(),
    };
  }

  /** Streams a task log; breaking out of the loop or aborting `signal` cancels the call. */
  tail(request: MessageInitShape<typeof TailRequestSchema>, options?: CallOptions): AsyncGenerator<TailResponse> {
    return this.serverStream(path("tail"), TailRequestSchema, TailResponseSchema, request, options);
  }

  /** AdminService.Backup: progress of an online backup, then its summary; cancelling stops the backup. */
  backup(request: MessageInitShape<typeof BackupRequestSchema>, options?: CallOptions): AsyncGenerator<BackupResponse> {
    const method = `/${AdminService.typeName}/${AdminService.method.backup.name}`;
    return this.serverStream(method, BackupRequestSchema, BackupResponseSchema, request, options);
  }

  private async *serverStream<I extends DescMessage, O extends DescMessage>(
    method: string,
    input: I,
    output: O,
    request: MessageInitShape<I>,
    options?: CallOptions,
  ): AsyncGenerator<MessageShape<O>> {
    const call = this.client.makeServerStreamRequest(
      method,
      serializer(input),
      deserializer(output),
      create(input, request),
      this.metadata(),
      {},
    );
    const onAbort = () => call.cancel();
    options?.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for await (const message of call as AsyncIterable<MessageShape<O>>) yield message;
    } catch (err) {
      throw withReadableDetails(err);
    } finally {
      options?.signal?.removeEventListener("abort", onAbort);
      call.cancel();
    }
  }

  close(): void {
    this.client.close();
  }

  // Sent as metadata on each call: grpc-js refuses call credentials on a cleartext channel,
  // and a leader on loopback may well be cleartext.
  private metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    if (this.token !== undefined) metadata.set("authorization", `Bearer ${this.token}`);
    return metadata;
  }

  private unary<I extends DescMessage, O extends DescMessage>(
    method: string,
    input: I,
    output: O,
    request: MessageInitShape<I>,
    options?: CallOptions,
  ): Promise<MessageShape<O>> {
    return new Promise((resolve, reject) => {
      const call = this.client.makeUnaryRequest(
        method,
        serializer(input),
        deserializer(output),
        create(input, request),
        this.metadata(),
        { deadline: Date.now() + (options?.timeoutMs ?? this.unaryTimeoutMs) },
        (err: grpc.ServiceError | null, response?: MessageShape<O>) => {
          options?.signal?.removeEventListener("abort", onAbort);
          if (err) reject(withReadableDetails(err));
          else resolve(response as MessageShape<O>);
        },
      );
      const onAbort = () => call.cancel();
      options?.signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}

/**
 * grpc-js unescapes the status message with decodeURI, which leaves reserved
 * characters (`/`, `:`, `,` …) percent-encoded; the gRPC spec percent-encodes
 * them all, so finish the job here.
 */
function withReadableDetails<E>(err: E): E {
  if (typeof err !== "object" || err === null || !("details" in err) || typeof err.details !== "string") return err;
  if (!err.details.includes("%")) return err;
  try {
    const details = decodeURIComponent(err.details);
    const e = err as unknown as { details: string; message: string };
    e.message = e.message.replace(e.details, details);
    e.details = details;
  } catch {
    // Not percent-encoded after all: keep it as sent.
  }
  return err;
}

/** The gRPC status of a failed call, or undefined for other errors. */
export function grpcCode(err: unknown): grpc.status | undefined {
  if (typeof err === "object" && err !== null && "code" in err && typeof err.code === "number") return err.code as grpc.status;
  return undefined;
}
