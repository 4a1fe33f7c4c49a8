/**
 * Backup and restore throughput on a log store of at least 1 GB, and the backup's
 * size against the store's. A leader (in this process) is filled through real Push
 * streams with chunk compression off, so the store reaches its size without first
 * ingesting six times as much text (chunks are copied as stored, compressed or not:
 * the backup's cost is per stored byte). Then: an online backup through the Backup
 * RPC, the leader stopped, an offline backup, a verify and a restore, each timed.
 * Everything lives in one temporary directory, removed at the end.
 *
 *   npm run bench:backup -- [--mb 1100]
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { openBackupTarget } from "../../src/backup/backup-target.js";
import { verifyBackup } from "../../src/backup/read-backup.js";
import { restoreBackup } from "../../src/backup/restore-backup.js";
import { backupDataDir } from "../../src/backup/store-backup.js";
import { LeaderClient } from "../../src/client/leader-client.js";
import { configSchema } from "../../src/config/config-schema.js";
import { startLeader } from "../../src/leader/leader.js";
import { TaskLogWriter } from "../../src/worker/task-log-writer.js";
import { createCiLogLines } from "./ci-log-lines.js";

const { values } = parseArgs({ options: { mb: { type: "string", default: "1100" }, writers: { type: "string", default: "4" } } });
const targetBytes = Number(values.mb) * 1024 * 1024;
const writerCount = Number(values.writers);
const MB = 1024 * 1024;
const root = mkdtempSync(join(tmpdir(), "joblog-bench-backup-"));

function bytesUnder(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) total += statSync(join(entry.parentPath, entry.name)).size;
  }
  return total;
}

async function timed<T>(label: string, bytes: () => number, fn: () => Promise<T>): Promise<T> {
  const started = process.hrtime.bigint();
  const result = await fn();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const n = bytes();
  console.log(
    `${label.padEnd(22)} ${(n / MB).toFixed(0).padStart(6)} MB in ${seconds.toFixed(1).padStart(5)} s = ${(n / MB / seconds).toFixed(0).padStart(4)} MB/s`,
  );
  return result;
}

try {
  const dataDir = join(root, "data");
  const config = configSchema.parse({
    server: { listen: "127.0.0.1:0", data_dir: dataDir },
    storage: { chunk_compression: "none" },
  });
  const leader = await startLeader(config, () => {});
  const url = `http://${leader.address}`;

  // Realistic CI lines, padded to ~1 KiB so the fill is bound by bytes rather than per-line cost.
  const next = createCiLogLines(7);
  const lines = Array.from({ length: 4096 }, () => next().padEnd(1000, " ."));
  let pushed = 0;
  await timed(
    "ingest (Push)",
    () => pushed,
    async () => {
      await Promise.all(
        Array.from({ length: writerCount }, async (_, w) => {
          const writer = TaskLogWriter.open({
            leader: url,
            runId: `bench-${w}`,
            task: "build",
            settings: { batchMaxBytes: 2 * MB, batchMaxLines: 10_000, streamMaxBytes: 64 * MB, bufferMaxBytes: 64 * MB },
          });
          for (let i = 0; pushed < targetBytes && i < 50_000_000; i++) {
            const line = lines[i % lines.length] as string;
            pushed += line.length + 60;
            if (!writer.write("stdout", line)) await writer.ready();
          }
          await writer.complete({ result: "succeeded", exitCode: 0 });
        }),
      );
    },
  );

  const online = join(root, "backup-online");
  const client = new LeaderClient(url);
  let onlineBytes = 0;
  await timed(
    "online backup (RPC)",
    () => onlineBytes,
    async () => {
      for await (const message of client.backup({ target: online })) if (message.summary) onlineBytes = Number(message.summary.bytes);
    },
  );
  client.close();
  await leader.stop();
  const storeBytes = bytesUnder(join(dataDir, "joblogs")) + bytesUnder(join(dataDir, "meta"));

  const offline = join(root, "backup-offline");
  const manifest = await timed(
    "offline backup",
    () => bytesUnder(offline),
    () => backupDataDir(dataDir, openBackupTarget(offline)),
  );
  await timed(
    "verify",
    () => manifest.totals.bytes,
    () => verifyBackup(openBackupTarget(offline)),
  );
  const restored = join(root, "restored");
  await timed(
    "restore",
    () => manifest.totals.bytes,
    async () => {
      mkdirSync(restored);
      writeFileSync(join(restored, "master.key"), readFileSync(join(dataDir, "master.key")), { mode: 0o600 });
      await restoreBackup(openBackupTarget(offline), { dataDir: restored, encryption: config.encryption });
    },
  );
  const backupBytes = bytesUnder(offline);
  const restoredBytes = bytesUnder(join(restored, "joblogs")) + bytesUnder(join(restored, "meta"));
  console.log(`store on disk          ${(storeBytes / MB).toFixed(0)} MB (joblogs + meta, after a clean stop)`);
  console.log(
    `backup                 ${(backupBytes / MB).toFixed(0)} MB in ${manifest.totals.files} files, ${manifest.totals.records} records = ${(backupBytes / storeBytes).toFixed(3)} x the store`,
  );
  console.log(`restored store         ${(restoredBytes / MB).toFixed(0)} MB`);
} finally {
  rmSync(root, { recursive: true, force: true });
}
