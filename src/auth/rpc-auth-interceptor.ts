import type { Interceptor, StreamResponse, UnaryResponse } from "@connectrpc/connect";
import { type AccessControl, isScoped, type Principal } from "./access-control.js";
import { rpcRule, type ScopeSource } from "./access-rules.js";
import type { Release, StreamKind, StreamQuota } from "./stream-quota.js";

// The streams that hold resources for as long as a client likes, counted per token.
const COUNTED: Readonly<Record<string, StreamKind>> = {
  "joblog.v1.LogService/Push": "push",
  "joblog.v1.LogService/Tail": "tail",
};

/** Request fields the scope checks read; every LogService request that names a run has one of them. */
interface ScopedFields {
  runId?: string | undefined;
  workspace?: string | undefined;
  /** A Push or OpenTask request's TaskRef; a Tail or Read request names its task by name only. */
  task?: { runId: string; workspace: string } | string | undefined;
}

/**
 * Checks every RPC before its handler runs: the token and its role from the
 * method's rule, then the scope from each request message (a Push stream's
 * messages are checked as they arrive, before the handler sees them), then the
 * per-token and total stream limits.
 */
export function createRpcAuthInterceptor(access: AccessControl, quota: StreamQuota): Interceptor {
  return (next) => async (req) => {
    const name = `${req.service.typeName}/${req.method.name}`;
    const rule = rpcRule(req.service.typeName, req.method.name);
    const principal = access.authenticate(req.header.get("authorization"), rule.need, name);
    // Anonymous and unscoped tokens pass every scope check: their messages go to the handler as
    // they are, without a stage per message (for a Push stream, promises and closures per batch).
    const scoped = isScoped(principal);
    if (!req.stream) {
      if (!scoped) return next(req);
      const message = await checkScope(access, principal, rule.scope, req.message as ScopedFields);
      return next({ ...req, message: message as typeof req.message });
    }
    const streamReq = scoped
      ? { ...req, message: checkEach(access, principal, rule.scope, req.message as AsyncIterable<ScopedFields>) as typeof req.message }
      : req;
    const kind = COUNTED[name];
    if (kind === undefined) return next(streamReq);
    const release = quota.acquire(kind, principal);
    req.signal.addEventListener("abort", release, { once: true });
    let res: UnaryResponse | StreamResponse;
    try {
      res = await next(streamReq);
    } catch (err) {
      release();
      throw err;
    }
    if (!res.stream) {
      release();
      return res;
    }
    return { ...res, message: releasing(res.message, release) };
  };
}

/** A stream let in: its place under the stream limits, and the scope check its messages need. */
export interface StreamAdmission<M> {
  /** Gives back the stream's place under the stream limits. */
  release(): void;
  /** Checks a message's scope before the handler sees it; undefined when the caller is not limited to some runs. */
  check?: ((message: M) => Promise<unknown>) | undefined;
}

/**
 * The interceptor's checks for a LogService call served without connect-node
 * (the gRPC routes in src/api): the token and its role, the stream limits for
 * Push and Tail, and, for a scoped token, the scope of each message that names
 * another run than the last.
 */
export function admitRpc(
  access: AccessControl,
  quota: StreamQuota,
  method: "Push" | "Tail" | "Read",
  authorization: string | undefined,
): StreamAdmission<ScopedFields> {
  const service = "joblog.v1.LogService";
  const name = `${service}/${method}`;
  const rule = rpcRule(service, method);
  const principal = access.authenticate(authorization, rule.need, name);
  const kind = COUNTED[name];
  const release = kind === undefined ? () => {} : quota.acquire(kind, principal);
  if (!isScoped(principal)) return { release };
  return { release, check: streamScopeCheck(access, principal, rule.scope) };
}

/** Checks a stream's messages in turn; one naming the same run as the last one checked passes without another lookup. */
function streamScopeCheck(
  access: AccessControl,
  principal: Principal,
  scope: ScopeSource,
): <M extends ScopedFields>(message: M) => Promise<M> {
  let lastRun: string | undefined;
  return async (message) => {
    const run = runOf(message);
    if (run !== undefined && run === lastRun) return message;
    const checked = await checkScope(access, principal, scope, message);
    lastRun = run;
    return checked;
  };
}

function runOf(message: ScopedFields): string | undefined {
  return typeof message.task === "object" ? message.task.runId : message.runId;
}

/** The message, checked; a listing may come back with the workspace filter its token implies. */
async function checkScope<M extends ScopedFields>(access: AccessControl, principal: Principal, scope: ScopeSource, message: M): Promise<M> {
  switch (scope) {
    case "run":
      await access.checkRun(principal, message.runId ?? "");
      return message;
    case "task-ref":
      // Only a Push stream's first message must name the task; the handler refuses a change of task.
      if (typeof message.task === "object") await access.checkTaskRef(principal, message.task);
      return message;
    case "workspace-filter": {
      const workspace = access.listingWorkspace(principal, message.workspace ?? "");
      return workspace === message.workspace ? message : { ...message, workspace };
    }
    case "none":
      return message;
  }
}

async function* checkEach<M extends ScopedFields>(
  access: AccessControl,
  principal: Principal,
  scope: ScopeSource,
  messages: AsyncIterable<M>,
): AsyncGenerator<M> {
  // A Push stream repeats its task; one lookup per run is enough.
  const check = streamScopeCheck(access, principal, scope);
  for await (const message of messages) yield await check(message);
}

async function* releasing<T>(messages: AsyncIterable<T>, release: Release): AsyncGenerator<T> {
  try {
    yield* messages;
  } finally {
    release();
  }
}
