import tls from "node:tls";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import WebSocket from "ws";
import { LogService } from "../../gen/joblog/v1/log_pb.js";
import { grpcCode, LeaderClient, type LeaderClientOptions } from "../../src/client/leader-client.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import { runCli } from "../helpers/run-cli.js";
import { makeTestCerts, type TestCerts } from "../helpers/test-certs.js";
import { makeTestTokens, pushWith } from "../helpers/test-tokens.js";

const tokens = makeTestTokens();
let certs: TestCerts;
let ca: Buffer;
let plainTls: LeaderFixture;
let mutualTls: LeaderFixture;
const clients: LeaderClient[] = [];

const httpsUrl = (f: LeaderFixture) => `https://${f.leader.address}`;

function client(f: LeaderFixture, options: LeaderClientOptions, url = httpsUrl(f)): LeaderClient {
  const c = new LeaderClient(url, { unaryTimeoutMs: 5_000, maxReconnectBackoffMs: 200, ...options });
  clients.push(c);
  return c;
}

async function failureCode(call: Promise<unknown>): Promise<status | undefined> {
  return call.then(
    () => undefined,
    (err: unknown) => grpcCode(err),
  );
}

/** The protocol ALPN picks when a raw TLS client offers `protocols`. */
function negotiated(f: LeaderFixture, protocols: string[]): Promise<string | false | null> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port: f.leader.port, ca, ALPNProtocols: protocols }, () => {
      resolve(socket.alpnProtocol ?? null);
      socket.destroy();
    });
    socket.on("error", reject);
  });
}

async function startTlsLeader(withClientCa: boolean): Promise<LeaderFixture> {
  const f = await startTestLeader({
    server: {
      tls: {
        cert_file: certs.serverCertFile,
        key_file: certs.serverKeyFile,
        ...(withClientCa && { client_ca_file: certs.caFile }),
      },
    },
    auth: { tokens: tokens.entries },
  } as Parameters<typeof startTestLeader>[0]);
  const connection: LeaderClientOptions = {
    token: tokens.plain.worker,
    ca,
    ...(withClientCa && { clientCert: await certs.read(certs.clientCertFile), clientKey: await certs.read(certs.clientKeyFile) }),
  };
  await pushWith(httpsUrl(f), connection, { runId: "tls-run" }, ["over TLS"]);
  return f;
}

beforeAll(async () => {
  certs = await makeTestCerts();
  ca = await certs.read(certs.caFile);
  plainTls = await startTlsLeader(false);
  mutualTls = await startTlsLeader(true);
});

afterAll(async () => {
  for (const c of clients) c.close();
  await plainTls?.dispose();
  await mutualTls?.dispose();
  await certs?.dispose();
});

describe("TLS", () => {
  test("ALPN picks HTTP/2 or HTTP/1.1 on the one port", async () => {
    expect(await negotiated(plainTls, ["h2"])).toBe("h2");
    expect(await negotiated(plainTls, ["http/1.1"])).toBe("http/1.1");
  });

  test("a client that offers no ALPN protocol is told apart by its first bytes, as on a cleartext port", async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ host: "127.0.0.1", port: plainTls.leader.port, ca }, () => {
        socket.write(
          `GET /api/jobs/tls-run/steps/build/logs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tokens.plain.reader}\r\nConnection: close\r\n\r\n`,
        );
      });
      let text = "";
      socket.on("data", (chunk: Buffer) => {
        text += chunk.toString();
      });
      socket.on("end", () => resolve(text));
      socket.on("error", reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    expect(answer).toContain("over TLS");
  });

  test("grpc-js reads with the CA and a token; a cleartext client or one that does not trust the CA gets no connection", async () => {
    const r = await client(plainTls, { token: tokens.plain.reader, ca }).read({ runId: "tls-run", task: "build" });
    expect(Buffer.from(r.data).toString()).toContain("over TLS");
    expect(
      await failureCode(
        client(plainTls, { token: tokens.plain.reader }, `http://${plainTls.leader.address}`).read({ runId: "tls-run", task: "build" }),
      ),
    ).toBe(status.UNAVAILABLE);
    expect(await failureCode(client(plainTls, { token: tokens.plain.reader }).read({ runId: "tls-run", task: "build" }))).toBe(
      status.UNAVAILABLE,
    );
    expect(await failureCode(client(plainTls, { ca }).read({ runId: "tls-run", task: "build" }))).toBe(status.UNAUTHENTICATED);
  });

  test("Connect over HTTP/1.1 and HTTP/2 work over TLS", async () => {
    const headers = { authorization: `Bearer ${tokens.plain.reader}` };
    const h1 = createClient(LogService, createConnectTransport({ baseUrl: httpsUrl(plainTls), httpVersion: "1.1", nodeOptions: { ca } }));
    expect((await h1.read({ runId: "tls-run", task: "build" }, { headers })).data.length).toBeGreaterThan(0);
    const session = new Http2SessionManager(httpsUrl(plainTls), undefined, { ca });
    try {
      const h2 = createClient(LogService, createGrpcTransport({ baseUrl: httpsUrl(plainTls), sessionManager: session }));
      expect((await h2.read({ runId: "tls-run", task: "build" }, { headers })).data.length).toBeGreaterThan(0);
    } finally {
      session.abort();
    }
  });

  test("the WebSocket route works over TLS (wss)", async () => {
    const first = await new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(`wss://${plainTls.leader.address}/api/jobs/tls-run/logs/stream`, {
        ca,
        headers: { authorization: `Bearer ${tokens.plain.reader}` },
      });
      ws.on("message", (data: Buffer) => {
        resolve(data.toString());
        ws.close();
      });
      ws.on("error", reject);
    });
    expect(first).toContain('"step":');
  });

  test("the CLI reads over TLS with --ca-file and JOBLOG_TOKEN, and says UNAUTHENTICATED without a token", async () => {
    // By name: grpc-js sets the TLS server name to an IP address as given, which Node warns about on stderr.
    const args = ["read", "tls-run", "build", "--leader", `https://localhost:${plainTls.leader.port}`, "--ca-file", certs.caFile];
    const ok = await runCli(args, { JOBLOG_TOKEN: tokens.plain.reader });
    expect(ok.stderr).toBe("");
    expect(ok.stdout).toContain("over TLS");
    const refused = await runCli(args);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("UNAUTHENTICATED");
  });
});

describe("mutual TLS", () => {
  test("a client with a certificate from the client CA is served", async () => {
    const c = client(mutualTls, {
      token: tokens.plain.reader,
      ca,
      clientCert: await certs.read(certs.clientCertFile),
      clientKey: await certs.read(certs.clientKeyFile),
    });
    expect(Buffer.from((await c.read({ runId: "tls-run", task: "build" })).data).toString()).toContain("over TLS");
  });

  test("a client without a certificate, or with one from another CA, is refused at the handshake", async () => {
    const read = (options: LeaderClientOptions) =>
      client(mutualTls, { token: tokens.plain.reader, ca, ...options }).read({ runId: "tls-run", task: "build" });
    expect(await failureCode(read({}))).toBe(status.UNAVAILABLE);
    expect(
      await failureCode(read({ clientCert: await certs.read(certs.rogueCertFile), clientKey: await certs.read(certs.rogueKeyFile) })),
    ).toBe(status.UNAVAILABLE);
    const raw = await new Promise<string>((resolve) => {
      const socket = tls.connect({ host: "127.0.0.1", port: mutualTls.leader.port, ca, ALPNProtocols: ["http/1.1"] }, () => {
        socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      });
      socket.on("data", () => resolve("answered"));
      socket.on("error", (err) => resolve(`error: ${err.message}`));
      socket.on("close", () => resolve("closed"));
    });
    expect(raw).not.toBe("answered");
  });

  test("the CLI presents --client-cert and --client-key", async () => {
    const base = ["read", "tls-run", "build", "--leader", `https://localhost:${mutualTls.leader.port}`, "--ca-file", certs.caFile];
    const ok = await runCli([...base, "--client-cert", certs.clientCertFile, "--client-key", certs.clientKeyFile], {
      JOBLOG_TOKEN: tokens.plain.reader,
    });
    expect(ok.stderr).toBe("");
    expect(ok.stdout).toContain("over TLS");
    const refused = await runCli(base, { JOBLOG_TOKEN: tokens.plain.reader });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("cannot reach the leader");
  });
});
