import { STATUS_CODES } from "node:http";
import type net from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import { type WebSocket, WebSocketServer } from "ws";
import { RUN_LOG_TASK } from "../ids/identifiers.js";
import type { LogReader } from "../read/log-reader.js";
import type { RunDirectory } from "../runs/run-directory.js";
import type { TailHub } from "../tail/tail-hub.js";
import { tailLog } from "../tail/tail-stream.js";
import { LOG_STREAM, pathId } from "./compat-routes.js";
import { type ErrorLogger, toHttpError } from "./error-mapping.js";
import type { UpgradeHandler } from "./listener.js";

/**
 * `GET /api/jobs/{run_id}/logs/stream` as a WebSocket, from the published
 * design: on connect, what the run's logs already hold (backfill), then new
 * records as they commit. Every text message is whole canonical JSONL records
 * of one task (each names its `step`); the run's tasks, its run log `_run` and
 * its server events `_server` are all sent, each in order and exactly once.
 * Tasks opened later are picked up as the run log announces them. The socket
 * closes with 1000 once the run is complete and everything is sent, 1001 when
 * the leader shuts down.
 *
 * Backpressure: each message is sent only after the previous one of its task
 * has been written to the socket, so a slow client holds one message per task.
 */

const RUN_LOG_RETRY_MS = 50;

export interface LogStreamDeps {
  directory: RunDirectory;
  reader: LogReader;
  hub: TailHub;
  /** Largest message payload: the leader's Read limit. */
  readBytes: number;
  shutdown: AbortSignal;
  log: ErrorLogger;
}

/** Refuses an upgrade with a plain HTTP answer, as a client that is not a browser can read it. */
function refuse(socket: net.Socket, status: number, message: string): void {
  refuseUpgrade(socket, status, message, {});
}

/** The same, with extra headers (a 401's `WWW-Authenticate`); used by the auth gate too. */
export function refuseUpgrade(socket: net.Socket, status: number, message: string, headers: Record<string, string>): void {
  const body = JSON.stringify({ error: message });
  const reason = STATUS_CODES[status] ?? "Error";
  const extra = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("");
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`,
  );
}

export function createLogStreamUpgrade(deps: LogStreamDeps): UpgradeHandler {
  // Clients have nothing to say on this socket: a small payload limit keeps them from making us buffer.
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4096 });
  return (req, socket, head) => {
    socket.on("error", () => socket.destroy());
    const path = new URL(req.url ?? "/", "http://leader").pathname;
    const match = LOG_STREAM.exec(path);
    if (!match) {
      refuse(socket, 404, `no WebSocket route at ${path}`);
      return;
    }
    if (deps.shutdown.aborted) {
      refuse(socket, 503, "the leader is shutting down; reconnect later");
      return;
    }
    let run: string;
    try {
      run = pathId("run_id", match[1] as string);
    } catch (err) {
      const { status, message } = toHttpError(err, deps.log);
      refuse(socket, status, message);
      return;
    }
    deps.directory.hasRun(run).then(
      (exists) => {
        if (!exists) refuse(socket, 404, `run ${run} not found`);
        else wss.handleUpgrade(req, socket, head, (ws) => void streamRun(deps, ws, run));
      },
      (err: unknown) => {
        const { status, message } = toHttpError(err, deps.log);
        refuse(socket, status, message);
      },
    );
  };
}

function sendText(ws: WebSocket, text: string): Promise<void> {
  return new Promise((resolve, reject) => ws.send(text, (err) => (err ? reject(err) : resolve())));
}

async function streamRun(deps: LogStreamDeps, ws: WebSocket, run: string): Promise<void> {
  const closed = new AbortController();
  ws.on("close", () => closed.abort());
  ws.on("error", () => closed.abort());
  const onShutdown = () => ws.close(1001, "the leader is shutting down");
  deps.shutdown.addEventListener("abort", onShutdown, { once: true });

  const following = new Map<string, Promise<void>>();
  let discovery: Promise<void> = Promise.resolve();
  // One lookup at a time: the run log may announce several tasks in one message.
  const discover = () => {
    discovery = discovery.then(async () => {
      const view = await deps.directory.getRun(run);
      // A log listed before it exists is picked up when the run log announces it.
      for (const t of [view.runLog, ...view.tasks, view.serverEvents]) {
        if (t.state !== undefined && !following.has(t.name)) following.set(t.name, follow(t.name));
      }
    });
    return discovery;
  };
  const follow = async (task: string): Promise<void> => {
    try {
      const chunks = tailLog(deps.reader, deps.hub, {
        run,
        task,
        offset: 0,
        maxBytes: deps.readBytes,
        signal: closed.signal,
        shutdown: deps.shutdown,
      });
      for await (const chunk of chunks) {
        if (chunk.data.length > 0) await sendText(ws, chunk.data.toString("utf8"));
        // The run log says when a task opens and when the run ends.
        if (task === RUN_LOG_TASK) await discover();
      }
    } catch (err) {
      if (closed.signal.aborted || deps.shutdown.aborted) return;
      throw err;
    }
  };

  try {
    await discover();
    // Every tail ends when its task completes; the run log's only when the run does.
    while (!closed.signal.aborted) {
      const current = [...following.values()];
      await Promise.all(current);
      await discover();
      if (following.size === current.length && following.has(RUN_LOG_TASK)) break;
      // A run whose logs are being created this very moment: look again shortly.
      if (!following.has(RUN_LOG_TASK)) await delay(RUN_LOG_RETRY_MS);
    }
    if (!closed.signal.aborted && !deps.shutdown.aborted) ws.close(1000, "the run is complete");
  } catch (err) {
    if (!closed.signal.aborted && !deps.shutdown.aborted) {
      deps.log(`log stream of run ${run} failed`, err);
      ws.close(1011, "internal error");
    }
  } finally {
    deps.shutdown.removeEventListener("abort", onShutdown);
  }
}
