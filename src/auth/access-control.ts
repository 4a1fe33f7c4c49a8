import { Code, ConnectError } from "@connectrpc/connect";
import type { TokenConfig } from "../config/config-schema.js";
import { identifierProblem } from "../ids/identifiers.js";
import type { Requirement, Role } from "./access-rules.js";
import { bearerToken, findByTokenHash } from "./bearer-token.js";

/** Who is calling: a configured token, or anyone when the leader has no tokens. */
export interface Principal {
  /** The token's name; `anonymous` without auth. */
  name: string;
  role: Role;
  /** Workspaces the token is limited to; undefined: all. */
  workspaces?: ReadonlySet<string>;
  /** The one run a worker token is limited to. */
  run?: string;
  /** True when the leader has no tokens: nothing is checked, nothing counted per token. */
  anonymous: boolean;
}

const ANONYMOUS: Principal = { name: "anonymous", role: "admin", anonymous: true };

// A new run without a workspace goes to this one (as the run directory does).
const DEFAULT_WORKSPACE = "default";

/** Finds a run's workspace; undefined when the run does not exist. */
export type RunWorkspaceLookup = (runId: string) => Promise<string | undefined>;

const unauthenticated = (message: string) => new ConnectError(message, Code.Unauthenticated);
const denied = (message: string) => new ConnectError(message, Code.PermissionDenied);

/**
 * The one place that decides who may do what: every RPC (through the
 * interceptor), every HTTP route and the WebSocket route ask it. Without
 * configured tokens everyone is an anonymous admin (the leader then serves only
 * on loopback; see listen-policy.ts).
 */
export class AccessControl {
  private readonly tokens: ReadonlyArray<TokenConfig>;

  constructor(
    tokens: readonly TokenConfig[],
    private readonly runWorkspace: RunWorkspaceLookup,
  ) {
    this.tokens = tokens;
  }

  get enabled(): boolean {
    return this.tokens.length > 0;
  }

  /**
   * The caller of a request with this `Authorization` header, if it meets `need`.
   * No or an unknown token: UNAUTHENTICATED; a role that is not enough: PERMISSION_DENIED.
   */
  authenticate(authorization: string | null | undefined, need: Requirement, what: string): Principal {
    if (!this.enabled || need === "public") return ANONYMOUS;
    const token = bearerToken(authorization);
    if (token === undefined) {
      throw unauthenticated(`${what} needs a token: send the header "authorization: Bearer <token>" (joblog tokens create makes one)`);
    }
    const entry = findByTokenHash(this.tokens, token);
    if (!entry) throw unauthenticated("the bearer token is not one this leader accepts");
    const principal: Principal = {
      name: entry.name,
      role: entry.role,
      anonymous: false,
      ...(entry.workspaces && { workspaces: new Set(entry.workspaces) }),
      ...(entry.run !== undefined && { run: entry.run }),
    };
    if (need !== "any" && principal.role !== need && principal.role !== "admin") {
      throw denied(`${what} needs a ${need} token; token ${principal.name} is a ${principal.role} token`);
    }
    return principal;
  }

  /** A request naming an existing run: the run must be in the token's scope. */
  async checkRun(principal: Principal, runId: string): Promise<void> {
    if (!isScoped(principal) || identifierProblem("run_id", runId)) return; // a bad id is refused by the handler
    if (principal.run !== undefined && runId !== principal.run) {
      throw denied(`token ${principal.name} is limited to run ${principal.run}, not run ${runId}`);
    }
    if (principal.workspaces) {
      const workspace = await this.runWorkspace(runId);
      // An unknown run (or a legacy log, which has no workspace) is outside every workspace scope.
      if (workspace === undefined || !principal.workspaces.has(workspace)) {
        throw denied(`token ${principal.name} is limited to workspace(s) ${list(principal.workspaces)}; run ${runId} is not in them`);
      }
    }
  }

  /** A worker opening a task: an existing run's workspace, or the one a new run would get, must be in scope. */
  async checkTaskRef(principal: Principal, ref: { runId: string; workspace: string }): Promise<void> {
    if (!isScoped(principal) || identifierProblem("run_id", ref.runId)) return;
    if (principal.run !== undefined && ref.runId !== principal.run) {
      throw denied(`token ${principal.name} is limited to run ${principal.run}, not run ${ref.runId}`);
    }
    if (principal.workspaces) {
      const workspace = (await this.runWorkspace(ref.runId)) ?? (ref.workspace || DEFAULT_WORKSPACE);
      if (!principal.workspaces.has(workspace)) {
        throw denied(
          `token ${principal.name} is limited to workspace(s) ${list(principal.workspaces)}, not ${workspace} (run ${ref.runId})`,
        );
      }
    }
  }

  /**
   * The workspace filter a listing runs with: a token limited to one workspace
   * lists it without asking; one limited to several must name one.
   */
  listingWorkspace(principal: Principal, requested: string): string {
    const scope = principal.workspaces;
    if (!scope || principal.anonymous) return requested;
    if (requested === "") {
      if (scope.size === 1) return [...scope][0] as string;
      throw denied(`token ${principal.name} is limited to workspaces ${list(scope)}: set workspace to one of them`);
    }
    if (!scope.has(requested)) throw denied(`token ${principal.name} is limited to workspace(s) ${list(scope)}, not ${requested}`);
    return requested;
  }
}

/** Whether the principal is limited to some runs or workspaces; when not, no request needs a scope check. */
export function isScoped(principal: Principal): boolean {
  return !principal.anonymous && (principal.workspaces !== undefined || principal.run !== undefined);
}

function list(set: ReadonlySet<string>): string {
  return [...set].join(", ");
}
