import type { Command } from "commander";
import { loadConfig } from "../../config/load-config.js";

export function registerLeader(program: Command): void {
  program
    .command("leader")
    .description("run the leader: stores logs in RocksDB and serves gRPC, gRPC-Web and Connect on one port")
    .option("--config <file>", "YAML configuration file (default: ./joblog.yaml when present)")
    .option("--data <dir>", "data directory (server.data_dir, default ./data)")
    .option("--listen <host:port>", "address to listen on (server.listen, default 127.0.0.1:8080)")
    .option("--insecure-no-auth", "serve on a non-loopback address without tokens (auth.insecure_no_auth); warned at every start")
    .action(async (opts: { config?: string; data?: string; listen?: string; insecureNoAuth?: boolean }) => {
      const config = loadConfig({
        file: opts.config || process.env.JOBLOG_CONFIG || undefined,
        overrides: { "server.data_dir": opts.data, "server.listen": opts.listen, "auth.insecure_no_auth": opts.insecureNoAuth },
      });
      const { startLeader } = await import("../../leader/leader.js");
      const leader = await startLeader(config);
      const scheme = config.server.tls ? (config.server.tls.client_ca_file ? "TLS, client certificates required" : "TLS") : "cleartext";
      const auth = config.auth.tokens.length > 0 ? `${config.auth.tokens.length} token(s)` : "no auth";
      process.stdout.write(`joblog leader listening on ${leader.address} (gRPC, gRPC-Web, Connect; ${scheme}; ${auth})\n`);
      process.stdout.write(`data directory: ${leader.dataDir}\n`);
      let signals = 0;
      const stop = (signal: string) => {
        if (++signals > 1) {
          process.stderr.write("joblog leader: second signal, exiting now\n");
          process.exit(1);
        }
        process.stdout.write(`joblog leader: ${signal} received, finishing in-flight batches\n`);
        leader.stop().then(
          () => {
            process.stdout.write("joblog leader: stopped\n");
            process.exit(0);
          },
          (err: unknown) => {
            process.stderr.write(`joblog leader: stop failed: ${String(err)}\n`);
            process.exit(1);
          },
        );
      };
      process.on("SIGINT", () => stop("SIGINT"));
      process.on("SIGTERM", () => stop("SIGTERM"));
    });
}
