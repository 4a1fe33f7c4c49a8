import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { openBackupTarget } from "../../src/backup/backup-target.js";
import { restoreBackup } from "../../src/backup/restore-backup.js";
import { LeaderClient } from "../../src/client/leader-client.js";
import { configSchema } from "../../src/config/config-schema.js";
import { FakeKms } from "../helpers/fake-kms.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import { contentsServedFrom, runContents } from "../helpers/run-contents.js";
import { pushTask } from "../helpers/task-logs.js";

/** With the aws key provider: a restore needs a KMS that can Decrypt the backup's data keys. */

let dir: string;
let kms: FakeKms;
let f: LeaderFixture;
const savedEnv = { ...process.env };

const encryptionWith = (k: FakeKms) =>
  ({ provider: "aws", aws: { key_id: "alias/joblog", region: "us-east-1", endpoint: k.endpoint, timeout_ms: 1000 } }) as const;

beforeAll(async () => {
  // The real SDK signs requests with credentials from the standard chain: the environment here.
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: "AKIATESTTESTTESTTEST",
    AWS_SECRET_ACCESS_KEY: "test-secret",
    AWS_EC2_METADATA_DISABLED: "true",
  });
  dir = await mkdtemp(join(tmpdir(), "joblog-kms-backup-"));
  kms = await FakeKms.start();
  kms.createKey("alias/joblog");
  f = await startTestLeader({ encryption: encryptionWith(kms) });
});

afterAll(async () => {
  await f?.dispose();
  await kms?.close();
  process.env = savedEnv;
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("a KMS that does not hold the key is refused, naming the KMS key, with nothing written; the right one restores", async () => {
  for (let r = 0; r < 2; r++) await pushTask(f.url, `kms-${r}`, "build", 200);
  const client = new LeaderClient(f.url);
  const contents = await runContents(client);
  const target = join(dir, "backup");
  let keyIds: string[] = [];
  for await (const message of client.backup({ target })) keyIds = message.summary?.keyIds ?? keyIds;
  client.close();
  expect(keyIds).toHaveLength(1);
  expect(keyIds[0]).toMatch(/^arn:aws:kms:/);

  const otherKms = await FakeKms.start();
  const refusedDir = join(dir, "refused");
  try {
    const refused = restoreBackup(openBackupTarget(target), {
      dataDir: refusedDir,
      encryption: configSchema.parse({ encryption: encryptionWith(otherKms) }).encryption,
    });
    await expect(refused).rejects.toThrow(new RegExp(`cannot restore with AWS KMS key alias/joblog: .*wrapped by master key ${keyIds[0]}`));
  } finally {
    await otherKms.close();
  }
  expect(await readdir(refusedDir).catch(() => [])).toEqual([]);

  const data = join(dir, "restored");
  const config = configSchema.parse({ server: { listen: "127.0.0.1:0", data_dir: data }, encryption: encryptionWith(kms) });
  await restoreBackup(openBackupTarget(target), { dataDir: data, encryption: config.encryption });
  expect(await contentsServedFrom(data, config.encryption)).toEqual(contents);
});
