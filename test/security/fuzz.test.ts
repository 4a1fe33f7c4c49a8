import http2 from "node:http2";
import net from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, expect, test } from "vitest";
import {
  GetRunRequestSchema,
  LocateLineRequestSchema,
  PushRequestSchema,
  ReadRequestSchema,
  SearchRequestSchema,
  Stream,
  TailRequestSchema,
} from "../../gen/joblog/v1/log_pb.js";
import { LeaderClient } from "../../src/client/leader-client.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import { createGrpcLogClient, readAll } from "../helpers/log-service-client.js";
import { makeTestTokens, pushWith } from "../helpers/test-tokens.js";
import { FuzzInput, grpcFrame, HOSTILE_IDS, seededRandom } from "./fuzz-inputs.js";

/**
 * A bounded fuzz run against a real leader: malformed gRPC frames and protobuf,
 * truncated HTTP/2 streams, garbage on the socket, hostile identifiers over
 * Connect and the HTTP routes. The leader must answer every request (no hang),
 * never with INTERNAL, still serve afterwards, and keep stored logs byte for byte.
 *
 * JOBLOG_FUZZ_ITERATIONS (default 1000), JOBLOG_FUZZ_SEED (default 0x5eed) and
 * JOBLOG_FUZZ_MAX_MS (default 240000) set the run; it prints the cases run and their outcomes.
 */

const ITERATIONS = Number(process.env.JOBLOG_FUZZ_ITERATIONS || 1000);
const SEED = Number(process.env.JOBLOG_FUZZ_SEED || 0x5eed);
// A bound on the whole run, so a slow machine ends it early (saying how many cases ran) instead of timing out.
const BUDGET_MS = Number(process.env.JOBLOG_FUZZ_MAX_MS || 240_000);
// A request with no answer in this long counts as a hang.
const ANSWER_WITHIN_MS = 10_000;
const TAIL_QUIET_MS = 2_000;
const GRPC_INTERNAL = "13";
const LIBRARY_DECODE_REFUSAL = /^(parse binary|received compressed)/;

const tokens = makeTestTokens();
let f: LeaderFixture;
let stored: Map<string, string>;
const outcomes = new Map<string, number>();
const count = (what: string) => outcomes.set(what, (outcomes.get(what) ?? 0) + 1);

beforeAll(async () => {
  f = await startTestLeader({
    // Low per-token limits: a stream the fuzz leaves counted would block the valid calls at the end.
    limits: { max_push_streams_per_token: 4, max_tail_subscribers_per_token: 4 },
    auth: { tokens: tokens.entries },
  } as Parameters<typeof startTestLeader>[0]);
  const lines = Array.from({ length: 500 }, (_, i) => `stored line ${i} \x1b[32mok\x1b[0m ✓`);
  await pushWith(f.url, { token: tokens.plain.worker }, { runId: "fuzz-done" }, lines);
  const admin = createGrpcLogClient(f.url, tokens.plain.admin);
  stored = new Map([["fuzz-done/build", (await readAll(admin.client, "fuzz-done", "build")).text]]);
  admin.close();
});

afterAll(async () => {
  await f?.dispose();
});

interface RawAnswer {
  status: number | undefined;
  grpcStatus: string | undefined;
  grpcMessage: string | undefined;
}

/** One raw HTTP/2 request; resolves when the stream closes, rejects if there is no answer in time. */
function rawRequest(
  session: http2.ClientHttp2Session,
  path: string,
  headers: http2.OutgoingHttpHeaders,
  body: Buffer,
  cut: "none" | "reset" | "half",
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": path, ...headers });
    const answer: RawAnswer = { status: undefined, grpcStatus: undefined, grpcMessage: undefined };
    const timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error(`no answer to ${path} within ${ANSWER_WITHIN_MS} ms`));
    }, ANSWER_WITHIN_MS);
    stream.on("response", (h) => {
      answer.status = Number(h[":status"]);
      if (h["grpc-status"] !== undefined) answer.grpcStatus = String(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) answer.grpcMessage = decodeURIComponent(String(h["grpc-message"]));
      // A server-streaming call may go on: its headers are the answer.
      if (path.endsWith("/Tail")) stream.close(http2.constants.NGHTTP2_CANCEL);
    });
    stream.on("trailers", (t) => {
      if (t["grpc-status"] !== undefined) answer.grpcStatus = String(t["grpc-status"]);
      if (t["grpc-message"] !== undefined) answer.grpcMessage = decodeURIComponent(String(t["grpc-message"]));
    });
    stream.on("data", () => undefined);
    stream.on("error", () => undefined);
    stream.on("close", () => {
      clearTimeout(timer);
      resolve(answer);
    });
    if (cut === "none") stream.end(body);
    else {
      stream.write(body.subarray(0, Math.max(1, body.length >> 1)));
      if (cut === "reset") stream.close(http2.constants.NGHTTP2_CANCEL);
      // "half": the client goes quiet without ending; the leader answers only once the stream is reset.
      else setImmediate(() => stream.close(http2.constants.NGHTTP2_CANCEL));
    }
  });
}

/** Writes bytes on a fresh socket and waits until the leader closes it or answers (bounded). */
function socketGarbage(bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(f.leader.port, "127.0.0.1", () => socket.end(bytes));
    const timer = setTimeout(() => socket.destroy(), 2000);
    socket.on("data", () => socket.destroy());
    socket.on("error", () => socket.destroy());
    socket.on("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

test(
  `the leader survives ${ITERATIONS} fuzz cases (seed ${SEED}) and keeps what it stored`,
  async () => {
    const fuzz = new FuzzInput(seededRandom(SEED));
    const valid: Record<string, Uint8Array> = {
      Read: toBinary(ReadRequestSchema, create(ReadRequestSchema, { runId: "fuzz-done", task: "build" })),
      GetRun: toBinary(GetRunRequestSchema, create(GetRunRequestSchema, { runId: "fuzz-done" })),
      Tail: toBinary(TailRequestSchema, create(TailRequestSchema, { runId: "fuzz-done", task: "build" })),
      Search: toBinary(SearchRequestSchema, create(SearchRequestSchema, { runId: "fuzz-done", task: "build", query: "ok" })),
      LocateLine: toBinary(LocateLineRequestSchema, create(LocateLineRequestSchema, { runId: "fuzz-done", task: "build", lineNumber: 3n })),
      Push: toBinary(
        PushRequestSchema,
        create(PushRequestSchema, {
          task: { runId: "fz-target", task: "t" },
          batch: { firstSeq: 1n, lines: [{ text: Buffer.from("fuzzed"), stream: Stream.STDOUT }] },
        }),
      ),
    };
    const methods = Object.keys(valid);
    let session = http2.connect(f.url);
    session.on("error", () => undefined);
    const deadline = Date.now() + BUDGET_MS;
    for (let i = 0; i < ITERATIONS && Date.now() < deadline; i++) {
      if (session.closed || session.destroyed) {
        session = http2.connect(f.url);
        session.on("error", () => undefined);
      }
      const kind = fuzz.int(10);
      try {
        await fuzzCase(i, kind);
      } catch (err) {
        throw new Error(`fuzz case ${i} (kind ${kind}, seed ${SEED}) failed: ${String(err)}`, { cause: err });
      }
    }
    async function fuzzCase(i: number, kind: number): Promise<void> {
      const token = fuzz.int(5) === 0 ? undefined : fuzz.pick([tokens.plain.admin, tokens.plain.reader, tokens.plain.worker, "jl_bogus"]);
      const auth = token ? { authorization: `Bearer ${token}` } : {};
      const grpcHeaders = { "content-type": "application/grpc", te: "trailers", ...auth };
      if (kind <= 3) {
        // Malformed protobuf inside well-formed or lying gRPC frames.
        const method = fuzz.pick(methods);
        const payload = fuzz.int(3) === 0 ? fuzz.bytes(fuzz.int(512)) : fuzz.mutate(valid[method] as Uint8Array);
        const frame = grpcFrame(payload, {
          compressed: fuzz.int(8) === 0,
          ...(fuzz.int(6) === 0 && { declaredLength: fuzz.pick([0, payload.length + 1, 0xffffffff, 64 * 1024 * 1024]) }),
        });
        const body = fuzz.int(6) === 0 ? Buffer.concat([frame, frame.subarray(0, fuzz.int(frame.length))]) : frame;
        const answer = await rawRequest(session, `/joblog.v1.LogService/${method}`, grpcHeaders, body, "none");
        // connect-node answers undecodable protobuf ("parse binary: …") and a frame flagged compressed
        // without a grpc-encoding with INTERNAL, as grpc-go does; the leader's own unexpected failures
        // are a bare "internal error", and those must not happen.
        if (answer.grpcStatus === GRPC_INTERNAL) expect(answer.grpcMessage, `case ${i}: ${method}`).toMatch(LIBRARY_DECODE_REFUSAL);
        count(`grpc ${method} -> ${answer.grpcStatus ?? `http ${answer.status}`}`);
      } else if (kind === 4) {
        // Streams cut short: reset mid-frame, or the whole connection dropped.
        const method = fuzz.pick(methods);
        if (fuzz.int(2) === 0) {
          await rawRequest(
            session,
            `/joblog.v1.LogService/${method}`,
            grpcHeaders,
            grpcFrame(valid[method] as Uint8Array),
            fuzz.pick(["reset", "half"] as const),
          );
          count("truncated stream");
        } else {
          const doomed = http2.connect(f.url);
          doomed.on("error", () => undefined);
          const stream = doomed.request({ ":method": "POST", ":path": `/joblog.v1.LogService/${method}`, ...grpcHeaders });
          stream.on("error", () => undefined);
          stream.write(grpcFrame(valid[method] as Uint8Array).subarray(0, 3));
          await new Promise<void>((resolve) => doomed.once("connect", () => resolve()));
          doomed.destroy();
          count("connection dropped mid-stream");
        }
      } else if (kind === 5) {
        const prefix = fuzz.pick([
          Buffer.alloc(0),
          Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
          Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n"),
          Buffer.from("\x16\x03\x01"),
        ]);
        await socketGarbage(Buffer.concat([prefix, fuzz.bytes(1 + fuzz.int(2048))]));
        count("socket garbage");
      } else if (kind <= 7) {
        // Hostile identifiers over Connect JSON (HTTP/1.1 via fetch).
        const id = fuzz.pick(HOSTILE_IDS);
        const method = fuzz.pick(["Read", "GetRun", "OpenTask", "Tail", "LocateLine"]);
        const body =
          method === "OpenTask"
            ? {
                task: {
                  runId: fuzz.int(2) ? id : "fz-ok",
                  task: fuzz.int(2) ? id : "t",
                  workspace: fuzz.int(3) ? "" : id,
                  workflow: fuzz.int(3) ? "" : id,
                },
              }
            : { runId: fuzz.int(3) ? id : "fuzz-done", task: id };
        const streaming = method === "Tail";
        let stage = "headers";
        let res: Response;
        let text = "";
        try {
          const signal = AbortSignal.timeout(streaming ? TAIL_QUIET_MS : ANSWER_WITHIN_MS);
          res = await fetch(`${f.url}/joblog.v1.LogService/${method}`, {
            method: "POST",
            headers: {
              "content-type": streaming ? "application/connect+json" : "application/json",
              "connect-protocol-version": "1",
              ...auth,
            },
            body: streaming ? new Uint8Array(grpcFrame(Buffer.from(JSON.stringify(body)))) : JSON.stringify(body),
            signal,
          });
          stage = `body after ${res.status}`;
          // A Tail of a log that is still open (say `_run` of a running run) rightly goes on: its headers are the answer.
          if (streaming) await res.body?.cancel();
          else text = await res.text();
        } catch (err) {
          if (streaming && stage === "headers") {
            // A Tail of an open, empty log (a running run's `_server`) rightly waits for its first record;
            // over Connect the headers go with it.
            count("connect Tail -> waiting on an empty open log");
            return;
          }
          throw new Error(
            `${method} ${JSON.stringify(body).slice(0, 300)} (${token ? "a token" : "no token"}), waiting for ${stage}: ${String(err)}`,
          );
        }
        expect(res.status, `case ${i}: ${method} ${JSON.stringify(id).slice(0, 40)}: ${text.slice(0, 200)}`).not.toBe(500);
        expect(text).not.toContain('"code":"internal"');
        count(`connect ${method} -> ${res.status}`);
      } else if (kind === 8) {
        // Hostile identifiers in the HTTP routes' paths, raw and percent-encoded.
        const id = fuzz.pick(HOSTILE_IDS);
        const segment = fuzz.int(2) ? encodeURIComponent(id) : id.replace(/[\0\n ]/g, (c) => encodeURIComponent(c));
        const path = fuzz.int(2) ? `/api/jobs/${segment}/steps/build/logs` : `/api/jobs/fuzz-done/steps/${segment}/logs`;
        const res = await fetch(`${f.url}${path}`, { headers: auth, signal: AbortSignal.timeout(ANSWER_WITHIN_MS) });
        await res.arrayBuffer();
        expect(res.status, `case ${i}: GET ${path.slice(0, 80)}`).toBeLessThan(500);
        count(`http route -> ${res.status}`);
      } else {
        // Garbage bodies in the Connect binary and JSON codecs.
        const json = fuzz.int(2) === 0;
        const res = await fetch(`${f.url}/joblog.v1.LogService/${fuzz.pick(["Read", "GetRun", "ListRuns", "CompleteRun"])}`, {
          method: "POST",
          headers: { "content-type": json ? "application/json" : "application/proto", "connect-protocol-version": "1", ...auth },
          body: json
            ? `{"runId": ${fuzz.pick(['"', "[", "1e999", "null", '"a"'])}${fuzz.bytes(fuzz.int(32)).toString("latin1")}`
            : new Uint8Array(fuzz.bytes(fuzz.int(256))),
          signal: AbortSignal.timeout(ANSWER_WITHIN_MS),
        });
        const text = await res.text();
        // Undecodable protobuf is connect-node's INTERNAL (HTTP 500) "parse binary: …", as above.
        if (res.status === 500) expect((JSON.parse(text) as { message: string }).message, `case ${i}`).toMatch(LIBRARY_DECODE_REFUSAL);
        count(`connect garbage -> ${res.status}`);
      }
    }
    session.close();

    // Still serving, nothing stored changed, and no stream was left counted against its token.
    const admin = createGrpcLogClient(f.url, tokens.plain.admin);
    try {
      for (const [key, text] of stored) {
        const [run, task] = key.split("/") as [string, string];
        expect((await readAll(admin.client, run, task)).text === text, `${key} changed`).toBe(true);
      }
      await pushWith(f.url, { token: tokens.plain.worker }, { runId: "after-fuzz", task: "t" }, ["still accepting"]);
      const reader = new LeaderClient(f.url, { token: tokens.plain.reader });
      for await (const t of reader.tail({ runId: "after-fuzz", task: "t" })) if (t.complete) break;
      reader.close();
    } finally {
      admin.close();
    }
    expect(f.logs.filter((l) => l.startsWith("internal error"))).toEqual([]);
    process.stdout.write(
      `fuzz: seed ${SEED}, ${[...outcomes.values()].reduce((a, b) => a + b, 0)} cases\n${[...outcomes]
        .sort()
        .map(([k, v]) => `  ${k}: ${v}`)
        .join("\n")}\n`,
    );
  },
  BUDGET_MS + 60_000,
);
