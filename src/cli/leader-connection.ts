import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { LeaderClient, type LeaderClientOptions } from "../client/leader-client.js";
import { CliError } from "./cli-errors.js";

/** The options every command that talks to a leader shares: its token and TLS material. */
export interface ConnectionFlags {
  token?: string;
  caFile?: string;
  clientCert?: string;
  clientKey?: string;
}

/** Registers the connection options on the program; they may be given before or after the command. */
export function registerConnectionOptions(program: Command): void {
  program
    .option("--token <token>", "bearer token for the leader (env JOBLOG_TOKEN; the environment keeps it out of `ps`)")
    .option("--ca-file <pem>", "CA bundle to verify an https:// leader with (env JOBLOG_CA_FILE)")
    .option("--client-cert <pem>", "client certificate, for a leader that requires mutual TLS (env JOBLOG_CLIENT_CERT)")
    .option("--client-key <pem>", "the client certificate's key (env JOBLOG_CLIENT_KEY)");
}

/** Client options from the flags, else the environment; files are read here so a bad path names its flag. */
export function connectionOptions(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env): LeaderClientOptions {
  const token = flags.token ?? (env.JOBLOG_TOKEN || undefined);
  const pem = (flag: string, path: string | undefined) => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      throw new CliError(`${flag} ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 2);
    }
  };
  const ca = pem("--ca-file", flags.caFile ?? (env.JOBLOG_CA_FILE || undefined));
  const clientCert = pem("--client-cert", flags.clientCert ?? (env.JOBLOG_CLIENT_CERT || undefined));
  const clientKey = pem("--client-key", flags.clientKey ?? (env.JOBLOG_CLIENT_KEY || undefined));
  if ((clientCert === undefined) !== (clientKey === undefined)) throw new CliError("--client-cert and --client-key go together", 2);
  return {
    ...(token !== undefined && { token }),
    ...(ca && { ca }),
    ...(clientCert && { clientCert }),
    ...(clientKey && { clientKey }),
  };
}

let current: ConnectionFlags = {};

/** Takes the flags of the command about to run (main.ts calls it before each action). */
export function useConnectionFlags(command: Command): void {
  current = command.optsWithGlobals<ConnectionFlags>();
}

/** The connection options of the command that is running. */
export function currentConnection(): LeaderClientOptions {
  return connectionOptions(current);
}

/** A client of the leader at `url`, with the running command's token and TLS material. */
export function leaderClient(url: string): LeaderClient {
  return new LeaderClient(url, currentConnection());
}
