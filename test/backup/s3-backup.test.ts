import { mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { openBackupTarget } from "../../src/backup/backup-target.js";
import { verifyBackup } from "../../src/backup/read-backup.js";
import { restoreBackup } from "../../src/backup/restore-backup.js";
import { LeaderClient } from "../../src/client/leader-client.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import { contentsServedFrom, runContents } from "../helpers/run-contents.js";
import { S3RVER_CREDENTIALS, type S3Server, startS3Server } from "../helpers/s3-server.js";
import { pushTask } from "../helpers/task-logs.js";

/** The Backup RPC writing to S3 (s3rver) from the leader, and a restore from there. */

let dir: string;
let f: LeaderFixture;
let s3: S3Server;
const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-s3-backup-"));
  s3 = await startS3Server("joblog-backups");
  // The leader takes S3 credentials from its AWS environment; here, the test process's.
  process.env.AWS_ACCESS_KEY_ID = S3RVER_CREDENTIALS.access_key_id;
  process.env.AWS_SECRET_ACCESS_KEY = S3RVER_CREDENTIALS.secret_access_key;
  f = await startTestLeader();
});

afterAll(async () => {
  await f?.dispose();
  await s3?.close();
  if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
  else process.env.AWS_ACCESS_KEY_ID = saved.id;
  if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
  else process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("online backup to s3://bucket/prefix in several parts, verified, restored, served byte-identical; a damaged object is refused by name", async () => {
  for (let r = 0; r < 4; r++) await pushTask(f.url, `s3-${r}`, "build", 2000);
  const client = new LeaderClient(f.url);
  const contents = await runContents(client);
  const url = `s3://${s3.bucket}/leader-1/`;
  let summary: { files: bigint } | undefined;
  for await (const message of client.backup({ target: url, s3Endpoint: s3.endpoint, partBytes: 16n * 1024n })) {
    summary = message.summary ?? summary;
  }
  client.close();
  expect(summary?.files).toBeGreaterThan(2n);

  const target = () => openBackupTarget(url, { s3: { endpoint: s3.endpoint } });
  const manifest = await verifyBackup(target());
  expect(manifest.files.map((file) => file.name)).toContain("joblogs-000002.jlkv");

  const data = join(dir, "restored");
  await mkdir(data);
  await writeFile(join(data, "master.key"), await readFile(join(f.dataDir, "master.key")), { mode: 0o600 });
  await restoreBackup(target(), { dataDir: data, encryption: f.config.encryption });
  expect(await contentsServedFrom(data)).toEqual(contents);

  // s3rver keeps each object's body in a file of its own: damage the second part of the log store.
  const bucketDir = join(s3.directory, s3.bucket);
  const files = await readdir(bucketDir, { recursive: true });
  const body = files.find((name) => name.includes("joblogs-000002.jlkv") && name.endsWith("._S3rver_object"));
  expect(body).toBeDefined();
  const handle = await open(join(bucketDir, body as string), "r+");
  await handle.write(Buffer.from("XXXX"), 0, 4, 100);
  await handle.close();
  await expect(verifyBackup(target())).rejects.toThrow(/joblogs-000002\.jlkv in s3:\/\/joblog-backups\/leader-1\/ has SHA-256/);
});
