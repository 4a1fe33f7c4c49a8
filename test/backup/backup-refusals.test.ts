import { cp, mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { openBackupTarget } from "../../src/backup/backup-target.js";
import { verifyBackup } from "../../src/backup/read-backup.js";
import { restoreBackup } from "../../src/backup/restore-backup.js";
import { backupDataDir } from "../../src/backup/store-backup.js";
import { grpcCode, LeaderClient } from "../../src/client/leader-client.js";
import { LocalKeyProvider } from "../../src/keys/local-key-provider.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import { runContents } from "../helpers/run-contents.js";
import { pushTask, until } from "../helpers/task-logs.js";

/** What a restore and a verify refuse, and that a refusal writes nothing. */

let dir: string;
let f: LeaderFixture;
let client: LeaderClient;
let good: string;
let contents: Awaited<ReturnType<typeof runContents>>;

async function backupThrough(c: LeaderClient, target: string) {
  let last: unknown;
  for await (const message of c.backup({ target })) last = message.summary ?? last;
  return last;
}

async function rejection(call: Promise<unknown>): Promise<Error & { code?: number; details?: string }> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  expect(err, "the call should have failed").toBeInstanceOf(Error);
  return err as Error;
}

/** A fresh data directory holding only a master key file: `copy` of the leader's, or a new one. */
async function dataDirWithKey(name: string, copy: boolean): Promise<string> {
  const data = join(dir, name);
  await mkdir(data);
  if (copy) await writeFile(join(data, "master.key"), await readFile(join(f.dataDir, "master.key")), { mode: 0o600 });
  else await LocalKeyProvider.open(join(data, "master.key"), true);
  return data;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-backup-refusals-"));
  f = await startTestLeader();
  client = new LeaderClient(f.url);
  for (let r = 0; r < 3; r++) await pushTask(f.url, `run-${r}`, "build", 400);
  contents = await runContents(client);
  good = join(dir, "good");
  await backupThrough(client, good);
});

afterAll(async () => {
  client?.close();
  await f?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("refusals", () => {
  test("the Backup RPC refuses a relative or non-empty target, and changes nothing there", async () => {
    const manifest = await readFile(join(good, "manifest.json"));
    const notEmpty = await rejection(backupThrough(client, good));
    expect(grpcCode(notEmpty)).toBe(status.FAILED_PRECONDITION);
    expect(notEmpty.message).toContain(`${good} is not empty`);
    expect(await readFile(join(good, "manifest.json"))).toEqual(manifest);
    const relative = await rejection(backupThrough(client, "backups/today"));
    expect(grpcCode(relative)).toBe(status.INVALID_ARGUMENT);
    expect(relative.message).toContain("target backups/today must be an absolute directory");
    const tiny = await rejection(
      (async () => {
        for await (const _ of client.backup({ target: join(dir, "tiny"), partBytes: 10n }));
      })(),
    );
    expect(grpcCode(tiny)).toBe(status.INVALID_ARGUMENT);
    expect(tiny.message).toContain("part_bytes must be 0 (the default) or between 4096 and");
  });

  test("a corrupted, truncated or unfinished backup is refused by verify and restore, naming the file; nothing is written", async () => {
    expect((await verifyBackup(openBackupTarget(good))).totals.files).toBe(2);
    const damage = async (name: string, how: (file: string) => Promise<void>) => {
      const copy = join(dir, `damaged-${name}`);
      await cp(good, copy, { recursive: true });
      await how(copy);
      return copy;
    };
    const flipped = await damage("flipped", async (copy) => {
      const file = await open(join(copy, "joblogs-000001.jlkv"), "r+");
      const { size } = await file.stat();
      const byte = Buffer.alloc(1);
      await file.read(byte, 0, 1, Math.floor(size / 2));
      await file.write(Buffer.from([(byte[0] ?? 0) ^ 0x01]), 0, 1, Math.floor(size / 2));
      await file.close();
    });
    const truncated = await damage("truncated", async (copy) => {
      const file = await open(join(copy, "meta-000001.jlkv"), "r+");
      await file.truncate((await file.stat()).size - 10);
      await file.close();
    });
    const unfinished = await damage("unfinished", (copy) => rm(join(copy, "manifest.json")));
    const cases: Array<[string, RegExp]> = [
      [flipped, /joblogs-000001\.jlkv in .* has SHA-256 [0-9a-f]+, the manifest says [0-9a-f]+: altered or damaged/],
      [truncated, /meta-000001\.jlkv in .*(truncated|ends inside a record)/],
      [unfinished, /manifest\.json is missing: not a joblog backup, or one that did not finish/],
    ];
    for (const [backup, message] of cases) {
      await expect(verifyBackup(openBackupTarget(backup))).rejects.toThrow(message);
      const data = await dataDirWithKey(`restore-${backup.split("-").at(-1)}`, true);
      await expect(restoreBackup(openBackupTarget(backup), { dataDir: data, encryption: f.config.encryption })).rejects.toThrow(message);
      expect(await readdir(data)).toEqual(["master.key"]);
    }
  });

  test("a master key that did not wrap the backup's data keys is refused, naming the key file; nothing is overwritten", async () => {
    const wrongKey = await dataDirWithKey("wrong-key", false);
    const encryption = { ...f.config.encryption, master_key_file: "" };
    const refused = restoreBackup(openBackupTarget(good), { dataDir: wrongKey, encryption });
    await expect(refused).rejects.toThrow(new RegExp(`local master key ${join(wrongKey, "master.key")}.*which is not in`));
    expect(await readdir(wrongKey)).toEqual(["master.key"]);
    const missingKey = join(dir, "no-key");
    await expect(restoreBackup(openBackupTarget(good), { dataDir: missingKey, encryption })).rejects.toThrow(
      `the master key file ${join(missingKey, "master.key")} does not exist`,
    );
    // --force onto a data directory of its own: its stores stay as they were.
    const other = await startTestLeader();
    try {
      await pushTask(other.url, "other-run", "build", 50);
      await other.leader.stop();
      const before = (await readdir(join(other.dataDir, "joblogs"))).sort();
      await expect(restoreBackup(openBackupTarget(good), { dataDir: other.dataDir, encryption, force: true })).rejects.toThrow(
        "which is not in",
      );
      expect((await readdir(join(other.dataDir, "joblogs"))).sort()).toEqual(before);
      expect((await readdir(other.dataDir)).sort()).toEqual(["joblogs", "master.key", "meta"]);
    } finally {
      await other.dispose();
    }
  });

  test("offline backup and --force restore are refused while a leader holds the data directory; --force replaces the stores once it is stopped", async () => {
    await expect(backupDataDir(f.dataDir, openBackupTarget(join(dir, "offline")))).rejects.toThrow(
      /another process.*stop the leader first/,
    );
    const encryption = f.config.encryption;
    await expect(restoreBackup(openBackupTarget(good), { dataDir: f.dataDir, encryption })).rejects.toThrow(
      `the data directory ${f.dataDir} is not empty`,
    );
    await expect(restoreBackup(openBackupTarget(good), { dataDir: f.dataDir, encryption, force: true })).rejects.toThrow(/another process/);
    // Written after the backup: gone once the backup is restored over the data directory.
    await pushTask(f.url, "after-backup", "build", 10);
    await f.restart({
      between: async () => {
        await restoreBackup(openBackupTarget(good), { dataDir: f.dataDir, encryption, force: true });
      },
    });
    await until(() =>
      client.listRuns({ pageSize: 1 }).then(
        () => true,
        () => false,
      ),
    );
    expect(await runContents(client)).toEqual(contents);
    expect((await readdir(f.dataDir)).sort()).toEqual(["joblogs", "master.key", "meta"]);
  });
});
