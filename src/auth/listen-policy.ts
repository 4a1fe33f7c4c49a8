import { isIP } from "node:net";
import type { JoblogConfig } from "../config/config-schema.js";

/** True for addresses only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  if (bare === "localhost" || bare === "::1") return true;
  if (isIP(bare) === 4) return bare.startsWith("127.");
  return bare.startsWith("::ffff:127.");
}

/** Thrown when the configuration would serve logs to the network without authentication. */
export class UnsafeListenError extends Error {
  override name = "UnsafeListenError";
}

/**
 * Safe by default: without tokens the leader may only listen on loopback. A
 * non-loopback address without tokens needs `auth.insecure_no_auth` (the
 * `--insecure-no-auth` flag), and then every start warns.
 */
export function checkListenPolicy(config: JoblogConfig, host: string, warn: (message: string) => void): void {
  if (config.auth.tokens.length > 0 || isLoopbackHost(host)) return;
  if (!config.auth.insecure_no_auth) {
    throw new UnsafeListenError(
      `refusing to listen on ${config.server.listen} without authentication: anyone who can reach it could read and write every log. ` +
        "Add tokens (joblog tokens create) under auth.tokens, listen on 127.0.0.1, or start with --insecure-no-auth (auth.insecure_no_auth: true)",
    );
  }
  warn(
    `WARNING: serving on ${config.server.listen} WITHOUT AUTHENTICATION (auth.insecure_no_auth): anyone who can reach this address can read, write and delete every log`,
  );
}
