import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { openBackupTarget } from "../../src/backup/backup-target.js";
import { writeBackup } from "../../src/backup/write-backup.js";
import type { KvSnapshot } from "../../src/store/kv-store.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-write-backup-"));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A store snapshot of `count` entries of 64 KiB that calls `at(i)` before yielding entry i. */
function snapshotOf(count: number, at: (i: number) => void = () => {}): KvSnapshot {
  return {
    async *entries() {
      for (let i = 0; i < count; i++) {
        at(i);
        const key = Buffer.alloc(9);
        key.writeUInt32BE(i, 5);
        key[0] = 0x43;
        yield [key, Buffer.alloc(64 * 1024, i)];
      }
    },
    close: async () => {},
  };
}

test("a backup cancelled half way stops and deletes every file it wrote", async () => {
  const target = openBackupTarget(join(dir, "cancelled"));
  const abort = new AbortController();
  // 64 entries of 64 KiB in parts of 256 KiB: cancelled while the meta store is still to come.
  const written = writeBackup(
    target,
    { joblogs: snapshotOf(64, (i) => i === 40 && abort.abort()), meta: snapshotOf(1) },
    {
      mode: "online",
      partBytes: 256 * 1024,
      signal: abort.signal,
    },
  );
  await expect(written).rejects.toThrow(/aborted/i);
  expect(await readdir(join(dir, "cancelled"))).toEqual([]);
});
