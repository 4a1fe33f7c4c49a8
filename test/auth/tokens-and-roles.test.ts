import { create } from "@bufbuild/protobuf";
import { Code, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import WebSocket from "ws";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection, ServerReflectionRequestSchema } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { AdminService } from "../../gen/joblog/v1/admin_pb.js";
import { LogService, Result } from "../../gen/joblog/v1/log_pb.js";
import { grpcCode, LeaderClient } from "../../src/client/leader-client.js";
import { TaskLogWriter } from "../../src/worker/task-log-writer.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import { expectConnectError } from "../helpers/log-service-client.js";
import { makeTestTokens, pushWith } from "../helpers/test-tokens.js";

const tokens = makeTestTokens();
type TokenName = keyof typeof tokens.plain;
let f: LeaderFixture;
const clients: LeaderClient[] = [];
const sessions: Http2SessionManager[] = [];

/** A grpc-js client (the worker's and the CLI's) sending `token`. */
function grpcClient(token?: TokenName | string): LeaderClient {
  const value = token === undefined ? undefined : (tokens.plain[token as TokenName] ?? token);
  const c = new LeaderClient(f.url, value === undefined ? {} : { token: value });
  clients.push(c);
  return c;
}

function bearer(token: TokenName): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${tokens.plain[token]}`);
    return next(req);
  };
}

/** A Connect client over HTTP/1.1 or HTTP/2, or a gRPC one, with `token` if given. */
function connectClient(kind: "connect-h1" | "connect-h2" | "grpc", token?: TokenName) {
  const interceptors = token ? [bearer(token)] : [];
  if (kind === "connect-h1") return createClient(LogService, createConnectTransport({ baseUrl: f.url, httpVersion: "1.1", interceptors }));
  const sessionManager = new Http2SessionManager(f.url);
  sessions.push(sessionManager);
  const transport =
    kind === "grpc"
      ? createGrpcTransport({ baseUrl: f.url, sessionManager, interceptors })
      : createConnectTransport({ baseUrl: f.url, httpVersion: "2", sessionManager, interceptors });
  return createClient(LogService, transport);
}

async function expectGrpcCode(call: Promise<unknown>, code: status, ...parts: string[]): Promise<void> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "the call should have failed").toBeDefined();
  expect(grpcCode(err), String(err)).toBe(code);
  for (const part of parts) expect((err as { details: string }).details).toContain(part);
}

async function pushLines(token: TokenName, runId: string, workspace: string, ...lines: string[]): Promise<void> {
  await pushWith(f.url, { token: tokens.plain[token] }, { runId, workspace }, lines);
}

beforeAll(async () => {
  f = await startTestLeader({ auth: { tokens: tokens.entries } } as Parameters<typeof startTestLeader>[0]);
  await pushLines("admin", "ci-run", "ci", "built in ci");
  await pushLines("admin", "ops-run", "ops", "built in ops");
  await pushLines("admin", "other-run", "other", "built elsewhere");
});

afterAll(async () => {
  for (const c of clients) c.close();
  for (const s of sessions) s.abort();
  await f?.dispose();
});

describe("missing or wrong token", () => {
  test("is UNAUTHENTICATED on every transport, naming the header to send", async () => {
    await expectGrpcCode(grpcClient().read({ runId: "ci-run", task: "build" }), status.UNAUTHENTICATED, "authorization: Bearer");
    await expectGrpcCode(
      grpcClient("jl_not-a-token").read({ runId: "ci-run", task: "build" }),
      status.UNAUTHENTICATED,
      "not one this leader accepts",
    );
    for (const kind of ["connect-h1", "connect-h2", "grpc"] as const) {
      await expectConnectError(connectClient(kind).read({ runId: "ci-run", task: "build" }), Code.Unauthenticated, "LogService/Read");
    }
  });

  test("a Push without a token stores nothing", async () => {
    const writer = TaskLogWriter.open({ leader: f.url, runId: "anon-run", task: "build", settings: { batchMaxIntervalMs: 5 } });
    writer.write("stdout", "should not land");
    await expect(writer.complete({ result: "succeeded", exitCode: 0 })).rejects.toThrow(/needs a token/);
    await expectGrpcCode(grpcClient("admin").getRun({ runId: "anon-run" }), status.NOT_FOUND);
  });

  test("plain HTTP routes answer 401 with WWW-Authenticate; the UI's static files stay public", async () => {
    const res = await fetch(`${f.url}/api/jobs/ci-run/steps/build/logs`);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toContain("Bearer");
    expect(((await res.json()) as { error: string }).error).toContain("needs a token");
    const wrong = await fetch(`${f.url}/api/jobs/ci-run/steps/build/logs`, { headers: { authorization: "Bearer jl_wrong" } });
    expect(wrong.status).toBe(401);
    expect((await fetch(`${f.url}/api/nothing`)).status).toBe(401);
    expect((await fetch(`${f.url}/`)).status).toBe(200);
  });

  test("the WebSocket route refuses before the upgrade", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`ws://${f.leader.address}/api/jobs/ci-run/logs/stream`);
      ws.on("error", () => undefined); // terminate() during the handshake reports itself as an error
      ws.on("unexpected-response", (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.on("open", () => reject(new Error("opened without a token")));
    });
    expect(status).toBe(401);
  });

  test("server reflection needs a token too", async () => {
    const anon = createClient(ServerReflection, createGrpcTransport({ baseUrl: f.url }));
    const list = async function* () {
      yield create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } });
    };
    await expectConnectError(
      (async () => {
        for await (const _ of anon.serverReflectionInfo(list())) break;
      })(),
      Code.Unauthenticated,
    );
    const authed = createClient(ServerReflection, createGrpcTransport({ baseUrl: f.url, interceptors: [bearer("worker")] }));
    let services = 0;
    for await (const r of authed.serverReflectionInfo(list())) {
      if (r.messageResponse.case === "listServicesResponse") services = r.messageResponse.value.service.length;
    }
    expect(services).toBeGreaterThan(0);
  });
});

describe("roles", () => {
  test("a reader reads, tails, lists and searches, but cannot push, complete or administer", async () => {
    const reader = grpcClient("reader");
    expect(Buffer.from((await reader.read({ runId: "ci-run", task: "build" })).data).toString()).toContain("built in ci");
    expect((await reader.listRuns({})).runs.length).toBeGreaterThanOrEqual(3);
    for await (const t of reader.tail({ runId: "ci-run", task: "build" })) if (t.complete) break;
    await expectGrpcCode(
      reader.openTask({ task: { runId: "ci-run", task: "x" } }),
      status.PERMISSION_DENIED,
      "needs a worker token",
      "reader",
    );
    await expectGrpcCode(reader.completeRun({ runId: "ci-run", result: Result.SUCCEEDED }), status.PERMISSION_DENIED);
    await expectGrpcCode(reader.rotateKeys(), status.PERMISSION_DENIED, "needs a admin token");
    const call = reader.push();
    call.write({ task: { runId: "ci-run", task: "sneaky" } });
    await expectGrpcCode(call.end(), status.PERMISSION_DENIED);
  });

  test("a worker pushes and completes, but cannot read, tail, list or administer", async () => {
    await pushLines("worker", "worker-run", "", "by the worker");
    const worker = grpcClient("worker");
    await worker.completeRun({ runId: "worker-run", result: Result.SUCCEEDED });
    await expectGrpcCode(worker.read({ runId: "worker-run", task: "build" }), status.PERMISSION_DENIED, "needs a reader token");
    await expectGrpcCode(worker.listRuns({}), status.PERMISSION_DENIED);
    await expectGrpcCode(worker.getRun({ runId: "worker-run" }), status.PERMISSION_DENIED);
    await expectGrpcCode(
      (async () => {
        for await (const _ of worker.tail({ runId: "worker-run", task: "build" })) break;
      })(),
      status.PERMISSION_DENIED,
    );
    await expectGrpcCode(worker.rotateKeys(), status.PERMISSION_DENIED);
    const denied = await fetch(`${f.url}/api/jobs/worker-run/steps/build/logs`, {
      headers: { authorization: `Bearer ${tokens.plain.worker}` },
    });
    expect(denied.status).toBe(403);
  });

  test("admin covers every AdminService method and everything else", async () => {
    const admin = grpcClient("admin");
    expect((await admin.rotateKeys()).provider).toBeTruthy();
    expect((await admin.read({ runId: "other-run", task: "build" })).data.length).toBeGreaterThan(0);
    // AdminService's rule is per service: every method of it, present or added later, needs admin.
    const adminService = createClient(AdminService, createGrpcTransport({ baseUrl: f.url, interceptors: [bearer("reader")] }));
    await expectConnectError(adminService.rotateKeys({}), Code.PermissionDenied, "admin");
  });

  test("probes need no token, /metrics a reader; DeleteRun and Backup need admin", async () => {
    expect((await fetch(`${f.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${f.url}/readyz`)).status).toBe(200);
    const health = createClient(Health, createGrpcTransport({ baseUrl: f.url }));
    expect((await health.check({})).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    const metrics = (token?: TokenName) =>
      fetch(`${f.url}/metrics`, { headers: token ? { authorization: `Bearer ${tokens.plain[token]}` } : {} }).then((r) => r.status);
    expect(await metrics()).toBe(401);
    expect(await metrics("worker")).toBe(403);
    expect(await metrics("reader")).toBe(200);
    const admin = (token: TokenName) => createClient(AdminService, createGrpcTransport({ baseUrl: f.url, interceptors: [bearer(token)] }));
    await expectConnectError(admin("reader").deleteRun({ runId: "ci-run" }), Code.PermissionDenied, "admin");
    await expectConnectError(
      (async () => {
        for await (const _ of admin("worker").backup({})) break;
      })(),
      Code.PermissionDenied,
      "admin",
    );
    // Refused, so the run is still there.
    expect((await grpcClient("admin").getRun({ runId: "ci-run" })).run?.runId).toBe("ci-run");
  });

  test("Connect over HTTP/1.1 and HTTP/2 and gRPC-on-connect see the same rules", async () => {
    for (const kind of ["connect-h1", "connect-h2", "grpc"] as const) {
      const reader = connectClient(kind, "reader");
      expect((await reader.read({ runId: "ci-run", task: "build" })).data.length).toBeGreaterThan(0);
      await expectConnectError(connectClient(kind, "worker").read({ runId: "ci-run", task: "build" }), Code.PermissionDenied, "reader");
    }
  });
});

describe("scopes", () => {
  test("a worker limited to a workspace opens runs only there, new or existing", async () => {
    await pushLines("workerCi", "ci-new", "ci", "ok");
    await expectGrpcCode(
      grpcClient("workerCi").openTask({ task: { runId: "ops-run", task: "x" } }),
      status.PERMISSION_DENIED,
      "ci",
      "ops-run",
    );
    await expectGrpcCode(
      grpcClient("workerCi").openTask({ task: { runId: "brand-new", task: "x", workspace: "ops" } }),
      status.PERMISSION_DENIED,
      "not ops",
    );
    // No workspace on a new run means "default", which is not ci.
    await expectGrpcCode(grpcClient("workerCi").openTask({ task: { runId: "brand-new", task: "x" } }), status.PERMISSION_DENIED, "default");
    await expectGrpcCode(grpcClient("admin").getRun({ runId: "brand-new" }), status.NOT_FOUND);
  });

  test("a worker limited to a run pushes only to it", async () => {
    await pushLines("workerRun", "only-run", "", "mine");
    await expectGrpcCode(grpcClient("workerRun").openTask({ task: { runId: "ci-run", task: "x" } }), status.PERMISSION_DENIED, "only-run");
    await expectGrpcCode(grpcClient("workerRun").completeRun({ runId: "ci-run", result: Result.FAILED }), status.PERMISSION_DENIED);
  });

  test("a reader limited to a workspace reads and lists only its runs", async () => {
    const reader = grpcClient("readerCi");
    expect((await reader.read({ runId: "ci-run", task: "build" })).data.length).toBeGreaterThan(0);
    await expectGrpcCode(reader.read({ runId: "ops-run", task: "build" }), status.PERMISSION_DENIED, "ci", "ops-run");
    await expectGrpcCode(reader.getRun({ runId: "no-such-run" }), status.PERMISSION_DENIED);
    const listed = await reader.listRuns({});
    expect(listed.runs.length).toBeGreaterThan(0);
    expect(new Set(listed.runs.map((r) => r.workspace))).toEqual(new Set(["ci"]));
    await expectGrpcCode(reader.listRuns({ workspace: "ops" }), status.PERMISSION_DENIED);
    const two = grpcClient("readerTwo");
    await expectGrpcCode(two.listRuns({}), status.PERMISSION_DENIED, "set workspace");
    expect((await two.listRuns({ workspace: "ops" })).runs.map((r) => r.runId)).toContain("ops-run");
    const http = (run: string) =>
      fetch(`${f.url}/api/jobs/${run}/steps/build/logs`, { headers: { authorization: `Bearer ${tokens.plain.readerCi}` } });
    expect((await http("ci-run")).status).toBe(200);
    expect((await http("ops-run")).status).toBe(403);
  });

  test("the WebSocket route checks the run's workspace", async () => {
    const open = (token: TokenName) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(`ws://${f.leader.address}/api/jobs/ops-run/logs/stream`, {
          headers: { authorization: `Bearer ${tokens.plain[token]}` },
        });
        ws.on("error", () => undefined); // terminate() during the handshake reports itself as an error
        ws.on("unexpected-response", (_req, res) => {
          resolve(res.statusCode ?? 0);
          ws.terminate();
        });
        ws.on("open", () => {
          resolve(101);
          ws.terminate();
        });
      });
    expect(await open("readerCi")).toBe(403);
    expect(await open("reader")).toBe(101);
  });
});
