import { resolve } from "node:path";
import type { Command } from "commander";
import type { BackupProgress } from "../../backup/backup-progress.js";
import { type BackupTarget, openBackupTarget, type S3Access } from "../../backup/backup-target.js";
import { loadConfig } from "../../config/load-config.js";
import { parseCount } from "../cli-values.js";
import { leaderClient } from "../leader-connection.js";
import { createProgressLine, describeThroughput } from "../progress-line.js";

interface S3Options {
  s3Endpoint?: string;
  s3Region?: string;
}

/** The S3 flags every backup command takes. */
export function withS3Options(command: Command): Command {
  return command
    .option("--s3-endpoint <url>", "S3-compatible endpoint (default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS)")
    .option("--s3-region <region>", "S3 region (default: AWS_REGION; us-east-1 with an endpoint)");
}

export function s3Access(opts: S3Options): S3Access {
  return { endpoint: opts.s3Endpoint, region: opts.s3Region };
}

/** Opens the target, runs `fn` with it, closes it. */
export async function withTarget<T>(location: string, opts: S3Options, fn: (target: BackupTarget) => Promise<T>): Promise<T> {
  const target = openBackupTarget(location, { s3: s3Access(opts) });
  try {
    return await fn(target);
  } finally {
    target.backend.close();
  }
}

export function registerBackup(program: Command, defaultLeader: string): void {
  const backup = withS3Options(
    program
      .command("backup")
      .description(
        "back up the log store and the metadata store: online through a running leader (it writes the backup itself), or offline from a stopped leader's --data directory",
      )
      .option("--to <target>", "an empty directory or s3://bucket/prefix (online: a directory on the leader's machine)")
      .option("--leader <url>", "back up through this running leader (env JOBLOG_LEADER)", defaultLeader)
      .option("--data <dir>", "back up a stopped leader's data directory instead")
      .option("--part-mb <n>", "cut each store's data into files of this many MiB", "256"),
  ).action(async (opts: S3Options & { to?: string; leader: string; data?: string; partMb: string }) => {
    if (!opts.to) throw new Error("--to is required: an empty directory or s3://bucket/prefix");
    const partMb = parseCount(opts.partMb, "--part-mb");
    if (partMb > 4096) throw new Error(`--part-mb must be at most 4096 (4 GiB), not ${partMb}`);
    const partBytes = partMb * 1024 * 1024;
    // A directory is named to the leader as an absolute path, resolved here.
    const to = opts.to.startsWith("s3://") ? opts.to : resolve(opts.to);
    const line = createProgressLine("backup");
    const started = Date.now();
    let summary: { files: number; records: number; bytes: number; keyIds: string[]; where: string };
    try {
      if (opts.data !== undefined) {
        const dataDir = opts.data;
        summary = await withTarget(to, opts, async (target) => {
          const { backupDataDir } = await import("../../backup/store-backup.js");
          const m = await backupDataDir(dataDir, target, { partBytes, onProgress: (p) => line.update(p) });
          return { ...m.totals, keyIds: m.key_ids, where: target.description };
        });
      } else {
        summary = await backupOnline(
          opts.leader,
          { target: to, s3Endpoint: opts.s3Endpoint ?? "", s3Region: opts.s3Region ?? "", partBytes },
          (p) => line.update(p),
        );
      }
    } finally {
      line.done();
    }
    process.stdout.write(
      `backup: ${summary.files} files, ${summary.records} records, ${describeThroughput(summary.bytes, Date.now() - started)} to ${summary.where}\n` +
        `backup: data keys wrapped by ${summary.keyIds.join(", ") || "(none)"}; a restore needs that key provider\n`,
    );
  });

  withS3Options(
    backup
      .command("verify")
      .description("check every file of a backup against its manifest (size, record count, SHA-256) without restoring it")
      .requiredOption("--from <target>", "the backup: a directory or s3://bucket/prefix"),
  ).action(async (opts: S3Options & { from: string }) => {
    const line = createProgressLine("verify");
    const started = Date.now();
    const manifest = await withTarget(opts.from, opts, async (target) => {
      try {
        const { verifyBackup } = await import("../../backup/read-backup.js");
        return await verifyBackup(target, { onProgress: (p) => line.update(p) });
      } finally {
        line.done();
      }
    });
    process.stdout.write(
      `verify: ok, ${manifest.totals.files} files, ${manifest.totals.records} records, ${describeThroughput(manifest.totals.bytes, Date.now() - started)}; ` +
        `created ${manifest.created_at} (${manifest.mode}, joblog ${manifest.leader_version})\n`,
    );
  });
}

async function backupOnline(
  leader: string,
  request: { target: string; s3Endpoint: string; s3Region: string; partBytes: number },
  onProgress: (p: BackupProgress) => void,
): Promise<{ files: number; records: number; bytes: number; keyIds: string[]; where: string }> {
  const client = leaderClient(leader);
  try {
    for await (const message of client.backup({ ...request, partBytes: BigInt(request.partBytes) })) {
      const progress = { files: Number(message.files), bytes: Number(message.bytes), records: Number(message.records), totalBytes: 0 };
      onProgress({ ...progress, phase: message.phase === "snapshot" ? "snapshot" : message.phase === "done" ? "done" : "copy" });
      const s = message.summary;
      if (s) return { files: Number(s.files), records: Number(s.records), bytes: Number(s.bytes), keyIds: s.keyIds, where: s.target };
    }
    throw new Error(`the leader at ${leader} ended the backup without a summary; it may not have finished`);
  } finally {
    client.close();
  }
}

/** With --data: the configuration's encryption settings, for a data directory. */
export function configFor(dataDir: string, file: string | undefined) {
  return loadConfig({ file: file || process.env.JOBLOG_CONFIG || undefined, overrides: { "server.data_dir": dataDir } });
}
