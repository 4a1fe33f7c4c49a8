import { sendJson } from "../api/compat-routes.js";
import type { NodeServerRequest, NodeServerResponse } from "../api/http-routes.js";
import type { LeaderMetrics } from "./leader-metrics.js";
import type { Readiness } from "./readiness.js";

export interface OpsDeps {
  readiness: Readiness;
  metrics: LeaderMetrics;
  log: (message: string, err?: unknown) => void;
}

/** The operator's HTTP routes, by path. */
export const OPS_PATHS = ["/healthz", "/readyz", "/metrics"] as const;

/**
 * `GET /healthz`: the process serves HTTP (liveness; no dependency is asked, so a KMS
 * outage does not get the leader restarted). `GET /readyz`: 200 when the stores are
 * open and the configured archive and KMS answer, 503 with the failing check named
 * otherwise. `GET /metrics`: Prometheus text.
 */
export function serveOpsRoute(deps: OpsDeps, path: string, req: NodeServerRequest, res: NodeServerResponse): boolean {
  if (!(OPS_PATHS as readonly string[]).includes(path)) return false;
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("allow", "GET, HEAD");
    sendJson(res, 405, { error: `${path} answers GET only` });
    return true;
  }
  if (path === "/healthz") {
    sendJson(res, 200, { status: "ok" });
  } else if (path === "/readyz") {
    deps.readiness.report().then(
      (report) => sendJson(res, report.ready ? 200 : 503, { status: report.ready ? "ready" : "not ready", checks: report.checks }),
      (err: unknown) => {
        deps.log("readiness check failed", err);
        sendJson(res, 503, { status: "not ready", error: "readiness check failed" });
      },
    );
  } else {
    deps.metrics.exposition().then(
      ({ contentType, body }) => {
        res.statusCode = 200;
        res.setHeader("content-type", contentType);
        res.setHeader("cache-control", "no-store");
        res.end(body);
      },
      (err: unknown) => {
        deps.log("metrics collection failed", err);
        sendJson(res, 500, { error: "metrics collection failed" });
      },
    );
  }
  return true;
}
