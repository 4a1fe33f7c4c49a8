import type http from "node:http";
import { pathId, sendJson } from "../api/compat-routes.js";
import { refuseUpgrade } from "../api/compat-websocket.js";
import { type ErrorLogger, toHttpError } from "../api/error-mapping.js";
import type { NodeHandlerFn } from "../api/http-routes.js";
import type { UpgradeHandler } from "../api/listener.js";
import type { AccessControl } from "./access-control.js";
import { httpRule } from "./access-rules.js";

/** Why a request was refused: the HTTP status Connect gives the code, and the message. */
export interface HttpRefusal {
  status: number;
  message: string;
  headers: Record<string, string>;
}

/**
 * Checks a plain HTTP request (the `/api/…` routes, the WebSocket route, the UI)
 * against the HTTP rule table: undefined when it may go on, else the refusal
 * (401 without a valid token, 403 for a role or scope that does not fit).
 */
export async function checkHttpRequest(
  access: AccessControl,
  req: Pick<http.IncomingMessage, "url" | "method" | "headers">,
  log: ErrorLogger,
): Promise<HttpRefusal | undefined> {
  if (!access.enabled) return undefined;
  const pathname = new URL(req.url ?? "/", "http://leader").pathname;
  const rule = httpRule(pathname);
  try {
    const principal = access.authenticate(req.headers.authorization, rule.need, `${req.method ?? "GET"} ${pathname}`);
    const segment = rule.runGroup === undefined ? undefined : rule.path.exec(pathname)?.[rule.runGroup];
    if (segment !== undefined) await access.checkRun(principal, pathId("run_id", segment));
    return undefined;
  } catch (err) {
    const { status, message } = toHttpError(err, log);
    // RFC 6750: a 401 says which scheme to use.
    const headers: Record<string, string> = status === 401 ? { "www-authenticate": 'Bearer realm="joblog"' } : {};
    return { status, message, headers };
  }
}

/** The fallback HTTP handler behind the gate. */
export function gateHttpRoutes(access: AccessControl, routes: NodeHandlerFn, log: ErrorLogger): NodeHandlerFn {
  if (!access.enabled) return routes;
  return (req, res) => {
    checkHttpRequest(access, req, log).then(
      (refusal) => {
        if (!refusal) return routes(req, res);
        for (const [name, value] of Object.entries(refusal.headers)) res.setHeader(name, value);
        sendJson(res, refusal.status, { error: refusal.message });
      },
      (err: unknown) => {
        log("auth check failed", err);
        sendJson(res, 500, { error: "internal error" });
      },
    );
  };
}

/** The WebSocket upgrade handler behind the gate; a refusal is a plain HTTP answer before the upgrade. */
export function gateUpgrade(access: AccessControl, upgrade: UpgradeHandler, log: ErrorLogger): UpgradeHandler {
  if (!access.enabled) return upgrade;
  return (req, socket, head) => {
    socket.on("error", () => socket.destroy());
    checkHttpRequest(access, req, log).then(
      (refusal) => (refusal ? refuseUpgrade(socket, refusal.status, refusal.message, refusal.headers) : upgrade(req, socket, head)),
      (err: unknown) => {
        log("auth check failed", err);
        refuseUpgrade(socket, 500, "internal error", {});
      },
    );
  };
}
