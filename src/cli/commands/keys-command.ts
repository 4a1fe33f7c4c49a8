import type { Command } from "commander";
import { loadConfig } from "../../config/load-config.js";
import { leaderClient } from "../leader-connection.js";

export function registerKeys(program: Command, defaultLeader: string): void {
  const keys = program.command("keys").description("manage the keys that encrypt the log store");
  keys
    .command("rotate")
    .description(
      "re-wrap every run's data key under the current master key (local: a new master key is generated; aws: the configured KMS key); chunks are not re-encrypted",
    )
    .option("--leader <url>", "rotate through a running leader (env JOBLOG_LEADER)", defaultLeader)
    .option("--data <dir>", "rotate a stopped leader's data directory instead")
    .option("--config <file>", "with --data: the leader's YAML configuration (key provider settings)")
    .action(async (opts: { leader: string; data?: string; config?: string }) => {
      let result: { rewrapped: number | bigint; unchanged: number | bigint; provider: string };
      if (opts.data !== undefined || opts.config !== undefined) {
        const config = loadConfig({
          file: opts.config || process.env.JOBLOG_CONFIG || undefined,
          overrides: { "server.data_dir": opts.data },
        });
        const { rotateKeysOffline } = await import("../../keys/offline-rotation.js");
        result = await rotateKeysOffline(config);
      } else {
        const client = leaderClient(opts.leader);
        try {
          result = await client.rotateKeys();
        } finally {
          client.close();
        }
      }
      process.stdout.write(`rotated: ${result.rewrapped} data keys re-wrapped, ${result.unchanged} already current (${result.provider})\n`);
    });
}
