import { resolve } from "node:path";
import type { Command } from "commander";
import { createProgressLine, describeThroughput } from "../progress-line.js";
import { configFor, withS3Options, withTarget } from "./backup-command.js";

export function registerRestore(program: Command): void {
  withS3Options(
    program
      .command("restore")
      .description(
        "restore a backup into an empty data directory (the master key file may already be there); everything is checked before anything is written",
      )
      .requiredOption("--from <target>", "the backup: a directory or s3://bucket/prefix")
      .requiredOption("--data <dir>", "the data directory to restore into")
      .option("--config <file>", "the leader's YAML configuration (its key provider must unwrap the backup's data keys)")
      .option("--force", "replace the stores of a data directory that has them (the leader must be stopped)"),
  ).action(async (opts: { from: string; data: string; config?: string; force?: boolean; s3Endpoint?: string; s3Region?: string }) => {
    const config = configFor(opts.data, opts.config);
    const line = createProgressLine("restore");
    const started = Date.now();
    const manifest = await withTarget(opts.from, opts, async (target) => {
      try {
        const { restoreBackup } = await import("../../backup/restore-backup.js");
        return await restoreBackup(target, {
          dataDir: config.server.data_dir,
          encryption: config.encryption,
          force: opts.force === true,
          onProgress: (p) => line.update(p),
        });
      } finally {
        line.done();
      }
    });
    process.stdout.write(
      `restore: ${manifest.totals.files} files, ${manifest.totals.records} records, ${describeThroughput(manifest.totals.bytes, Date.now() - started)} ` +
        `into ${resolve(config.server.data_dir)} (backup of ${manifest.created_at})\n`,
    );
  });
}
