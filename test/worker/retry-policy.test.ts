import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, expect, test } from "vitest";
import { LogService } from "../../gen/joblog/v1/log_pb.js";
import { TaskLogRefusedError, TaskLogWriter } from "../../src/worker/task-log-writer.js";

/**
 * Which failures a worker retries: a leader stand-in on loopback answers OpenTask
 * with a chosen code and counts the attempts.
 */

let answer: Code = Code.Unavailable;
let attempts = 0;
let server: http2.Http2Server;
let url: string;

beforeAll(async () => {
  const handler = connectNodeAdapter({
    routes: (router) =>
      router.service(LogService, {
        openTask() {
          attempts++;
          throw new ConnectError(`answered ${Code[answer]} on purpose`, answer);
        },
      }),
  });
  server = http2.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const FAST = { backoffInitialMs: 5, backoffMaxMs: 20 };

test.each([
  [Code.InvalidArgument, status.INVALID_ARGUMENT],
  [Code.Unauthenticated, status.UNAUTHENTICATED],
  [Code.PermissionDenied, status.PERMISSION_DENIED],
  [Code.FailedPrecondition, status.FAILED_PRECONDITION],
])("a worker answered %s gives up at once with TaskLogRefusedError, without retrying", async (code, grpcStatus) => {
  answer = code;
  attempts = 0;
  const retries: number[] = [];
  const writer = TaskLogWriter.open({ leader: url, runId: "r", task: "t", settings: FAST, onRetry: (_, delay) => retries.push(delay) });
  writer.write("stdout", "a line");
  const err = await writer.complete({ result: "succeeded", exitCode: 0 }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(TaskLogRefusedError);
  expect((err as TaskLogRefusedError).code).toBe(grpcStatus);
  expect((err as TaskLogRefusedError).message).toContain("on purpose");
  expect(attempts).toBe(1);
  expect(retries).toEqual([]);
});

test("a worker answered UNAVAILABLE retries with capped, jittered backoff until told to stop", async () => {
  answer = Code.Unavailable;
  attempts = 0;
  const retries: number[] = [];
  const writer = TaskLogWriter.open({ leader: url, runId: "r", task: "t", settings: FAST, onRetry: (_, delay) => retries.push(delay) });
  writer.write("stdout", "a line");
  for (let i = 0; i < 500 && attempts < 5; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  await writer.abort();
  expect(attempts).toBeGreaterThanOrEqual(5);
  expect(retries.length).toBeGreaterThanOrEqual(4);
  for (const delay of retries) expect(delay).toBeLessThanOrEqual(FAST.backoffMaxMs);
});
