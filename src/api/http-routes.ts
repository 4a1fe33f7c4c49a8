import type { connectNodeAdapter } from "@connectrpc/connect-node";
import { type OpsDeps, serveOpsRoute } from "../ops/ops-routes.js";
import { type CompatDeps, sendJson, serveCompatRoute } from "./compat-routes.js";
import type { UiAssets } from "./ui-assets.js";

/** connect-node's handler for what its router does not serve (its type is not exported by name). */
export type NodeHandlerFn = NonNullable<NonNullable<Parameters<typeof connectNodeAdapter>[0]>["fallback"]>;
export type NodeServerRequest = Parameters<NodeHandlerFn>[0];
export type NodeServerResponse = Parameters<NodeHandlerFn>[1];

/**
 * What the leader answers besides the RPCs (which connect-node routes first):
 * the operator's `/healthz`, `/readyz` and `/metrics`, the published design's
 * `/api/…` routes, then the browser UI.
 */
export function createHttpRoutes(compat: CompatDeps, ui: UiAssets | undefined, ops?: OpsDeps): NodeHandlerFn {
  return (req, res) => {
    const path = new URL(req.url ?? "/", "http://leader").pathname;
    if (ops && serveOpsRoute(ops, path, req, res)) return;
    if (path === "/api" || path.startsWith("/api/")) {
      void serveCompatRoute(compat, req, res);
    } else if (ui && (req.method === "GET" || req.method === "HEAD")) {
      ui.serve(req, res);
    } else {
      sendJson(res, 404, { error: `no such route: ${req.method} ${path}` });
    }
  };
}
