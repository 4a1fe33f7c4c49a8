import type http from "node:http";
import { pathId, sendJson } from "../api/compat-routes.js";
import { refuseUpgrade } from "../api/compat-websocket.js";
import { type ErrorLogger, toHttpError } from "../api/error-mapping.js";
import type { NodeHandlerFn } from "../api/http-routes.js";
import type { UpgradeHandler } from "../api/listener.js";
import type { AccessControl, Principal } from "./access-control.js";
import { httpRule } from "./access-rules.js";
import type { StreamQuota } from "./stream-quota.js";

/** Why a request was refused: the HTTP status Connect gives the code, and the message. */
export interface HttpRefusal {
  status: number;
  message: string;
  headers: Record<string, string>;
}

/**
 * Checks a plain HTTP request (the `/api/…` routes, the WebSocket route, the UI)
 * against the HTTP rule table: the caller when it may go on, else the refusal
 * (401 without a valid token, 403 for a role or scope that does not fit).
 */
export async function authorizeHttpRequest(
  access: AccessControl,
  req: Pick<http.IncomingMessage, "url" | "method" | "headers">,
  log: ErrorLogger,
): Promise<{ principal: Principal } | { refusal: HttpRefusal }> {
  const pathname = new URL(req.url ?? "/", "http://leader").pathname;
  const rule = httpRule(pathname);
  try {
    const principal = access.authenticate(req.headers.authorization, rule.need, `${req.method ?? "GET"} ${pathname}`);
    const segment = rule.runGroup === undefined ? undefined : rule.path.exec(pathname)?.[rule.runGroup];
    if (segment !== undefined && access.enabled) await access.checkRun(principal, pathId("run_id", segment));
    return { principal };
  } catch (err) {
    return { refusal: refusalOf(err, log) };
  }
}

function refusalOf(err: unknown, log: ErrorLogger): HttpRefusal {
  const { status, message } = toHttpError(err, log);
  // RFC 6750: a 401 says which scheme to use.
  const headers: Record<string, string> = status === 401 ? { "www-authenticate": 'Bearer realm="joblog"' } : {};
  return { status, message, headers };
}

/** The fallback HTTP handler behind the gate. */
export function gateHttpRoutes(access: AccessControl, routes: NodeHandlerFn, log: ErrorLogger): NodeHandlerFn {
  if (!access.enabled) return routes;
  return (req, res) => {
    authorizeHttpRequest(access, req, log).then(
      (outcome) => {
        if ("principal" in outcome) return routes(req, res);
        for (const [name, value] of Object.entries(outcome.refusal.headers)) res.setHeader(name, value);
        sendJson(res, outcome.refusal.status, { error: outcome.refusal.message });
      },
      (err: unknown) => {
        log("auth check failed", err);
        sendJson(res, 500, { error: "internal error" });
      },
    );
  };
}

/**
 * The WebSocket upgrade handler behind the gate; a refusal is a plain HTTP
 * answer before the upgrade. An accepted socket holds a Tail subscription of
 * its token (it follows every log of a run) until it closes.
 */
export function gateUpgrade(access: AccessControl, quota: StreamQuota, upgrade: UpgradeHandler, log: ErrorLogger): UpgradeHandler {
  return (req, socket, head) => {
    socket.on("error", () => socket.destroy());
    authorizeHttpRequest(access, req, log).then(
      (outcome) => {
        if ("refusal" in outcome) {
          refuseUpgrade(socket, outcome.refusal.status, outcome.refusal.message, outcome.refusal.headers);
          return;
        }
        let release: () => void;
        try {
          release = quota.acquire("tail", outcome.principal);
        } catch (err) {
          const refusal = refusalOf(err, log);
          refuseUpgrade(socket, refusal.status, refusal.message, refusal.headers);
          return;
        }
        socket.once("close", release);
        upgrade(req, socket, head);
      },
      (err: unknown) => {
        log("auth check failed", err);
        refuseUpgrade(socket, 500, "internal error", {});
      },
    );
  };
}
