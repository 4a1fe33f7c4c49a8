import { createClient } from "@connectrpc/connect";
import { compressionGzip, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { afterAll, beforeAll, expect, test } from "vitest";
import { LogService, Result } from "../../gen/joblog/v1/log_pb.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import { batchOf, expectedJsonl, messages, readAll, tailToEnd, testLines } from "../helpers/log-service-client.js";

/**
 * With `server.compression: gzip` the leader offers compressed responses, which
 * its own gRPC routes for Push, Tail and Read do not make: connect-node then
 * serves every call, and a client that accepts gzip gets gzip.
 */

const BASE_TS = Date.UTC(2025, 1, 12, 10, 56, 45, 123);
let f: LeaderFixture;
let session: Http2SessionManager;

beforeAll(async () => {
  f = await startTestLeader({ server: { compression: "gzip" } });
  session = new Http2SessionManager(f.url);
});

afterAll(async () => {
  session?.abort();
  await f?.dispose();
});

test("Push, Read and Tail over gRPC with gzip responses return the stored bytes", async () => {
  let compressedAnswers = 0;
  const transport = createGrpcTransport({
    baseUrl: f.url,
    sessionManager: session,
    acceptCompression: [compressionGzip],
    interceptors: [
      (next) => async (req) => {
        const res = await next(req);
        if (res.header.get("grpc-encoding") === "gzip") compressedAnswers++;
        return res;
      },
    ],
  });
  const client = createClient(LogService, transport);
  const lines = testLines("gz", 2000);
  const ref = { runId: "gzip-run", task: "build" };
  await client.push(messages({ task: ref, batch: batchOf(1, BASE_TS, lines), complete: { result: Result.SUCCEEDED } }));
  const expected = expectedJsonl("build", BASE_TS, lines);
  expect((await readAll(client, "gzip-run", "build")).text).toBe(expected);
  expect(await tailToEnd(client.tail({ runId: "gzip-run", task: "build" }))).toBe(expected);
  expect(compressedAnswers).toBeGreaterThan(0);
});
