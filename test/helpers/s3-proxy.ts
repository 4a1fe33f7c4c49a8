import http from "node:http";
import type { AddressInfo } from "node:net";

/**
 * An HTTP proxy in front of an S3 server that counts the bytes it carries and can
 * answer every request with a 500, to stand for an outage of the store.
 */
export interface S3Proxy {
  endpoint: string;
  /** Response body bytes sent to the client since the last reset. */
  bytesDown(): number;
  /** Requests seen since the last reset (method and path, with range when there is one). */
  requests(): string[];
  reset(): void;
  /** While true, every request gets a 500 InternalError without reaching the server. */
  failing: boolean;
  /**
   * While set, each request independently gets a 500 (probability `failRatio`), or
   * is held `stallMs` before it is passed on (`stallRatio`): a flaky store.
   */
  chaos: { failRatio: number; stallRatio: number; stallMs: number } | undefined;
  close(): Promise<void>;
}

export async function startS3Proxy(targetPort: number): Promise<S3Proxy> {
  let bytes = 0;
  let seen: string[] = [];
  const state: { failing: boolean; chaos: S3Proxy["chaos"] } = { failing: false, chaos: undefined };
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}${req.headers.range ? ` ${req.headers.range}` : ""}`);
    const roll = Math.random();
    const chaos = state.chaos;
    const fail = state.failing || (chaos !== undefined && roll < chaos.failRatio);
    if (fail) {
      req.resume();
      res.writeHead(500, { "content-type": "application/xml" });
      res.end(
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected by the test proxy</Message></Error>',
      );
      return;
    }
    // Store and forward: S3 commits a PUT whole or not at all, but s3rver writes the body
    // straight into the object's file, so a request cut off mid-body (a client timeout, a
    // killed leader) would leave a truncated object there. The proxy passes on only bodies
    // that arrived whole; a late one still lands late, as it can on S3.
    const body: Buffer[] = [];
    req.on("data", (chunk: Buffer) => body.push(chunk));
    const forward = () => {
      const upstream = http.request(
        { host: "127.0.0.1", port: targetPort, method: req.method, path: req.url, headers: req.headers },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.on("data", (chunk: Buffer) => {
            bytes += chunk.length;
          });
          up.pipe(res);
        },
      );
      upstream.on("error", () => res.destroy());
      upstream.end(Buffer.concat(body));
    };
    const delayMs = chaos !== undefined && roll < chaos.failRatio + chaos.stallRatio ? chaos.stallMs : 0;
    let whole = false;
    req.once("end", () => {
      whole = true;
      setTimeout(forward, delayMs);
    });
    // Cut off before the body was whole: nothing is forwarded.
    req.once("close", () => {
      if (!whole) res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bytesDown: () => bytes,
    requests: () => [...seen],
    reset() {
      bytes = 0;
      seen = [];
    },
    get failing() {
      return state.failing;
    },
    get chaos() {
      return state.chaos;
    },
    set chaos(value) {
      state.chaos = value;
    },
    set failing(value: boolean) {
      state.failing = value;
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
