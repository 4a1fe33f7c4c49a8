import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";

export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** Takes an HTTP/1.1 Upgrade request (a WebSocket); the socket is its own from then on. */
export type UpgradeHandler = (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => void;

export interface Listener {
  /** `host:port` actually bound (port 0 resolved). */
  address: string;
  port: number;
  /** Stops accepting connections and asks open ones to finish their streams and close. */
  stopAccepting(): void;
  /** Closes every connection still open. */
  closeAll(): void;
}

/** PEM material for TLS on the port; with `ca`, clients must present a certificate it signed. */
export interface ListenerTls {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
}

// The HTTP/2 connection preface every h2c client sends first ("PRI * HTTP/2.0").
const H2_PREFACE_START = "PRI";

/**
 * One port for both HTTP/2 (gRPC, Connect) and HTTP/1.1 (Connect and gRPC-Web
 * from browsers). Cleartext: Node cannot negotiate the two without TLS, so the
 * first bytes of each connection decide which server takes it. With `tlsOptions`:
 * ALPN decides.
 */
export interface KeepaliveOptions {
  /** Ping each HTTP/2 connection this often... */
  timeMs: number;
  /** ...and close it when a ping is not answered within this. */
  timeoutMs: number;
}

const STREAM_WINDOW_BYTES = 512 * 1024;
const CONNECTION_WINDOW_BYTES = 4 * 1024 * 1024;

/**
 * connect-node waits for 'drain' (or 'error') after a write the response could not take
 * at once. A response whose client goes away meanwhile (a Tail subscriber that stopped
 * reading, then disconnected) gets neither, so its handler would wait forever and keep
 * its subscription, its place under the subscriber limits and the unsent message. A
 * 'drain' when the response closes unfinished lets the next write fail and the handler end.
 */
function releasedOnClose(handler: RequestHandler): RequestHandler {
  return ((req: http.IncomingMessage, res: http.ServerResponse) => {
    res.once("close", () => {
      if (!res.writableFinished) res.emit("drain");
    });
    return (handler as (req: http.IncomingMessage, res: http.ServerResponse) => unknown)(req, res);
  }) as RequestHandler;
}

export function listen(
  rawHandler: RequestHandler,
  host: string,
  port: number,
  onUpgrade?: UpgradeHandler,
  tlsOptions?: ListenerTls,
  keepalive?: KeepaliveOptions,
): Promise<Listener> {
  const handler = releasedOnClose(rawHandler);
  const h1 = http.createServer(handler as http.RequestListener);
  h1.keepAliveTimeout = 65_000;
  if (onUpgrade) h1.on("upgrade", (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => onUpgrade(req, socket, head));
  // HTTP/2's default windows (64 KiB per stream and per connection) let a client send one
  // 64 KiB slice of a batch per round trip to the event loop: a busy moment of the leader
  // stalls every stream of the connection. Larger windows keep batches flowing; the
  // connection window bounds what one connection can have buffered here.
  const h2 = http2.createServer(
    { settings: { initialWindowSize: STREAM_WINDOW_BYTES } },
    handler as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
  );
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
    const pinger = keepalive ? keepPinging(session, keepalive) : undefined;
    session.on("close", () => {
      sessions.delete(session);
      clearInterval(pinger);
    });
  });

  const sniff = (socket: net.Socket) => {
    socket.once("data", (chunk: Buffer) => {
      socket.pause();
      socket.unshift(chunk);
      const target = chunk.toString("latin1", 0, 3) === H2_PREFACE_START ? h2 : h1;
      target.emit("connection", socket);
      process.nextTick(() => socket.resume());
    });
  };
  const track = (socket: net.Socket) => {
    // As node's own http servers do (noDelay: true by default); this raw server hands sockets to them.
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
  };
  // With TLS, ALPN names the protocol; a client that offers none is sniffed as on the cleartext port.
  // Both servers get the decrypted TLS socket, so the WebSocket upgrade works over TLS unchanged.
  const tcp = tlsOptions
    ? tls.createServer(
        {
          cert: tlsOptions.cert,
          key: tlsOptions.key,
          ALPNProtocols: ["h2", "http/1.1"],
          ...(tlsOptions.ca && { ca: tlsOptions.ca, requestCert: true, rejectUnauthorized: true }),
        },
        (socket) => {
          socket.on("error", () => socket.destroy());
          if (socket.alpnProtocol === "h2") h2.emit("connection", socket);
          else if (socket.alpnProtocol === "http/1.1") h1.emit("connection", socket);
          else sniff(socket);
        },
      )
    : net.createServer((socket) => {
        track(socket);
        sniff(socket);
      });
  if (tlsOptions) {
    // The raw sockets are tracked (closing one closes its TLS socket), handshakes in progress included.
    tcp.on("connection", track);
    // A failed handshake (no client certificate, garbage instead of TLS) ends that socket, nothing else.
    tcp.on("tlsClientError", (_err: Error, socket: tls.TLSSocket) => socket.destroy());
  }

  return new Promise((resolve, reject) => {
    tcp.once("error", (err: NodeJS.ErrnoException) => {
      const where = `${host}:${port}`;
      if (err.code === "EADDRINUSE")
        reject(new Error(`cannot listen on ${where}: the address is in use (another leader?); choose another with --listen`));
      else if (err.code === "EADDRNOTAVAIL") reject(new Error(`cannot listen on ${where}: no such address on this machine`));
      else if (err.code === "EACCES") reject(new Error(`cannot listen on ${where}: permission denied (ports below 1024 need privileges)`));
      else reject(err);
    });
    tcp.listen(port, host, () => {
      tcp.removeAllListeners("error");
      const bound = tcp.address() as net.AddressInfo;
      const shownHost = bound.family === "IPv6" ? `[${bound.address}]` : bound.address;
      resolve({
        address: `${shownHost}:${bound.port}`,
        port: bound.port,
        stopAccepting: () => {
          tcp.close();
          for (const session of sessions) session.close();
          h1.closeIdleConnections();
        },
        closeAll: () => {
          for (const session of sessions) session.destroy();
          for (const socket of sockets) socket.destroy();
        },
      });
    });
  });
}

/**
 * A peer that vanished without closing its connection (a killed VM, a dropped NAT
 * entry) would hold its streams, and its tail subscriptions, until TCP gives up
 * hours later: an unanswered ping closes the session instead.
 */
function keepPinging(session: http2.ServerHttp2Session, keepalive: KeepaliveOptions): NodeJS.Timeout {
  const timer = setInterval(() => {
    if (session.closed || session.destroyed) return;
    const deadline = setTimeout(() => session.destroy(), keepalive.timeoutMs);
    deadline.unref();
    try {
      session.ping(() => clearTimeout(deadline));
    } catch {
      // The session is closing already (ERR_HTTP2_PING_CANCEL or too many pings outstanding).
      clearTimeout(deadline);
    }
  }, keepalive.timeMs);
  timer.unref();
  return timer;
}
