/**
 * Which role each entry point needs: one table for the RPCs, one for the HTTP
 * routes. A new route is one line here; a route missing from the RPC table
 * needs `admin`, so forgetting a line fails closed.
 */

export type Role = "worker" | "reader" | "admin";

/**
 * `public`: no token needed (probes, the UI's static files, which hold no data).
 * `any`: any valid token.
 * A role: that role or `admin` (admin may do everything).
 */
export type Requirement = "public" | "any" | Role;

/** Where a request names what it touches, for tokens limited to workspaces or a run. */
export type ScopeSource =
  /** `run_id` of the request: the run's workspace must be in scope. */
  | "run"
  /** `task` (a TaskRef): the run's workspace, or the requested one for a new run. */
  | "task-ref"
  /** `workspace` filter of ListRuns. */
  | "workspace-filter"
  /** Nothing run-specific. */
  | "none";

export interface RpcRule {
  need: Requirement;
  scope: ScopeSource;
}

/** Keyed by `package.Service/Method`, or `package.Service/*` for every method of a service. */
export const RPC_RULES: Readonly<Record<string, RpcRule>> = {
  "joblog.v1.LogService/OpenTask": { need: "worker", scope: "task-ref" },
  "joblog.v1.LogService/Push": { need: "worker", scope: "task-ref" },
  "joblog.v1.LogService/CompleteRun": { need: "worker", scope: "run" },
  "joblog.v1.LogService/Read": { need: "reader", scope: "run" },
  "joblog.v1.LogService/Tail": { need: "reader", scope: "run" },
  "joblog.v1.LogService/GetRun": { need: "reader", scope: "run" },
  "joblog.v1.LogService/Search": { need: "reader", scope: "run" },
  "joblog.v1.LogService/LocateLine": { need: "reader", scope: "run" },
  "joblog.v1.LogService/ListRuns": { need: "reader", scope: "workspace-filter" },
  // Operator actions (RotateKeys, Backup, DeleteRun, ...): every method, present and future.
  "joblog.v1.AdminService/*": { need: "admin", scope: "none" },
  // Descriptors only, no data: any caller with a token may discover the API.
  "grpc.reflection.v1.ServerReflection/*": { need: "any", scope: "none" },
  "grpc.reflection.v1alpha.ServerReflection/*": { need: "any", scope: "none" },
  "grpc.health.v1.Health/*": { need: "public", scope: "none" },
};

const UNLISTED_RPC: RpcRule = { need: "admin", scope: "none" };

export function rpcRule(service: string, method: string): RpcRule {
  return RPC_RULES[`${service}/${method}`] ?? RPC_RULES[`${service}/*`] ?? UNLISTED_RPC;
}

export interface HttpRule {
  path: RegExp;
  need: Requirement;
  /** The capture group of `path` holding a run id (percent-encoded), for scope checks. */
  runGroup?: number;
}

/** First match wins; paths no rule matches are the UI's static files (public). */
export const HTTP_RULES: readonly HttpRule[] = [
  { path: /^\/api\/jobs\/([^/]+)\/steps\/[^/]+\/logs$/, need: "reader", runGroup: 1 },
  { path: /^\/api\/jobs\/([^/]+)\/logs\/stream$/, need: "reader", runGroup: 1 },
  { path: /^\/api(\/|$)/, need: "any" },
  { path: /^\/(healthz|readyz)$/, need: "public" },
  { path: /^\/metrics$/, need: "reader" },
];

const UNLISTED_HTTP: HttpRule = { path: /^/, need: "public" };

export function httpRule(pathname: string): HttpRule {
  return HTTP_RULES.find((rule) => rule.path.test(pathname)) ?? UNLISTED_HTTP;
}
