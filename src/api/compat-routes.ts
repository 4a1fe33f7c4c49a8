import { invalidArgument } from "../errors/domain-error.js";
import { identifierProblem } from "../ids/identifiers.js";
import type { LogReader } from "../read/log-reader.js";
import { type ErrorLogger, toHttpError } from "./error-mapping.js";
import type { NodeServerRequest, NodeServerResponse } from "./http-routes.js";

/**
 * Routes of the published design, for tools written against it. Everything
 * here goes through the same reader and the same identifier rules as the RPCs.
 *
 * `GET /api/jobs/{run_id}/steps/{task}/logs` → `{"logs": "<the task's text>"}`:
 * each record's line and a newline, as the task printed it. The JSON is
 * streamed record by record, so a large log holds no more memory than one read.
 */

type Request = NodeServerRequest;
type Response = NodeServerResponse;

export interface CompatDeps {
  reader: LogReader;
  /** Bytes per read: the leader's Read limit. */
  readBytes: number;
  log: ErrorLogger;
}

const STEP_LOGS = /^\/api\/jobs\/([^/]+)\/steps\/([^/]+)\/logs$/;
/** `GET /api/jobs/{run_id}/logs/stream`: a WebSocket (see compat-websocket.ts). */
export const LOG_STREAM = /^\/api\/jobs\/([^/]+)\/logs\/stream$/;

/** The identifier in a path segment, percent-decoded and checked like an RPC field. */
export function pathId(field: "run_id" | "task", segment: string): string {
  let value: string;
  try {
    value = decodeURIComponent(segment);
  } catch {
    throw invalidArgument(`${field} in the path is not valid percent-encoding`);
  }
  const problem = identifierProblem(field, value);
  if (problem) throw invalidArgument(problem);
  return value;
}

export function sendJson(res: Response, status: number, body: unknown): void {
  const bytes = Buffer.from(JSON.stringify(body));
  res.statusCode = status;
  res.setHeader("content-type", "application/json; charset=utf-8");
  res.setHeader("content-length", bytes.length);
  res.setHeader("cache-control", "no-store");
  res.setHeader("x-content-type-options", "nosniff");
  res.end(bytes);
}

/** Answers every `/api/…` request: these routes, or a JSON 404/405/426. */
export async function serveCompatRoute(deps: CompatDeps, req: Request, res: Response): Promise<void> {
  const path = new URL(req.url ?? "/", "http://leader").pathname;
  const steps = STEP_LOGS.exec(path);
  try {
    if (steps && (req.method === "GET" || req.method === "HEAD")) {
      await sendStepLogs(deps, pathId("run_id", steps[1] as string), pathId("task", steps[2] as string), res, req.method === "HEAD");
    } else if (LOG_STREAM.test(path)) {
      sendJson(res, 426, { error: "this route is a WebSocket: connect with an Upgrade: websocket request" });
    } else if (steps) {
      res.setHeader("allow", "GET, HEAD");
      sendJson(res, 405, { error: `${req.method} is not allowed here; use GET` });
    } else {
      sendJson(res, 404, { error: `no such route: ${path}` });
    }
  } catch (err) {
    if (res.headersSent) {
      // The body is under way: cutting it short is the only honest signal left.
      deps.log(`GET ${path} failed while sending`, err);
      res.destroy();
      return;
    }
    const { status, message } = toHttpError(err, deps.log);
    sendJson(res, status, { error: message });
  }
}

async function sendStepLogs(deps: CompatDeps, run: string, task: string, res: Response, headOnly: boolean): Promise<void> {
  // The log as it is now; lines committed while it is being sent belong to the next request.
  const { state } = await deps.reader.state(run, task);
  res.statusCode = 200;
  res.setHeader("content-type", "application/json; charset=utf-8");
  res.setHeader("cache-control", "no-store");
  res.setHeader("x-content-type-options", "nosniff");
  if (headOnly) {
    res.end();
    return;
  }
  res.write('{"logs":"');
  let offset = 0;
  while (offset < state.length) {
    if (res.destroyed) return;
    const r = await deps.reader.read(run, task, offset, deps.readBytes);
    if (r.data.length === 0) break;
    const data = r.offset + r.data.length > state.length ? r.data.subarray(0, state.length - r.offset) : r.data;
    let text = "";
    for (const record of data.toString("utf8").split("\n")) {
      if (record === "") continue;
      // A JSON string's content: the line and its newline, escaped.
      text += JSON.stringify(`${(JSON.parse(record) as { line: string }).line}\n`).slice(1, -1);
    }
    offset = r.offset + data.length;
    if (!res.write(text)) await drainedOrClosed(res);
  }
  res.end('"}');
}

/** Waits until the response can take more, or is gone (a client that went away never drains). */
function drainedOrClosed(res: Response): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}
