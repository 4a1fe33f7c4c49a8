import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, test } from "vitest";
import { autoFloorBytes, type FreeSpace, FreeSpaceFloor, memtableBudgetFor } from "../../src/store/free-space-floor.js";
import { KvStore, StoreWriteError } from "../../src/store/kv-store.js";

const MIB = 1024 * 1024;
let dir: string | undefined;
const floors: FreeSpaceFloor[] = [];

afterEach(async () => {
  for (const floor of floors.splice(0)) floor.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

/** A filesystem whose free space the test sets; counts the readings taken. */
function fakeDisk(free: number, total = 64 * MIB) {
  const disk = {
    free,
    readings: 0,
    read: async (): Promise<FreeSpace> => {
      disk.readings++;
      return { free: disk.free, total };
    },
  };
  return disk;
}

async function floorOn(disk: ReturnType<typeof fakeDisk>, minFreeBytes?: number): Promise<FreeSpaceFloor> {
  const floor = await FreeSpaceFloor.open("/unused", { minFreeBytes, read: disk.read, pollMs: 60_000, retryMs: 0 });
  floors.push(floor);
  return floor;
}

test("the automatic floor is a tenth of the filesystem, between 4 and 256 MiB", () => {
  expect(autoFloorBytes(64 * MIB)).toBe(Math.round(6.4 * MIB));
  expect(autoFloorBytes(16 * MIB)).toBe(4 * MIB);
  expect(autoFloorBytes(100 * 1024 * MIB)).toBe(256 * MIB);
});

test("two stores' memtables stay within three quarters of the floor, and 64 MiB without one", () => {
  for (const floor of [4 * MIB, Math.round(6.4 * MIB), 100 * MIB, 256 * MIB, 4096 * MIB]) {
    // Level compaction: up to 6 memtables of budget/4 each, per store.
    expect(2 * 1.5 * memtableBudgetFor(floor)).toBeLessThanOrEqual(0.75 * floor);
  }
  expect(memtableBudgetFor(256 * MIB)).toBe(64 * MIB);
  expect(memtableBudgetFor(0)).toBe(64 * MIB);
});

test("new bytes are admitted down to the floor, counting what was admitted since the last reading", async () => {
  const disk = fakeDisk(10 * MIB);
  const floor = await floorOn(disk, 8 * MIB);
  expect(await floor.admit(MIB)).toBeUndefined();
  expect(await floor.admit(MIB)).toBeUndefined();
  // 10 MiB read, 2 MiB admitted: one byte more would go below 8 MiB; the disk is read again first.
  const before = disk.readings;
  expect(await floor.admit(1)).toBeUndefined();
  expect(disk.readings).toBe(before + 1);
  disk.free = 8 * MIB;
  await floor.refresh();
  const refusal = await floor.admit(1);
  expect(refusal).toBe("8.0 MiB free on its filesystem, below storage.min_free_bytes (8.0 MiB)");
  expect(floor.below).toBe(false);
  disk.free = 7 * MIB;
  await floor.refresh();
  expect(floor.below).toBe(true);
  // Space returns: the next write reads the disk and is admitted.
  disk.free = 20 * MIB;
  expect(await floor.admit(MIB)).toBeUndefined();
  expect(floor.below).toBe(false);
});

test("a floor of 0 admits everything", async () => {
  const floor = await floorOn(fakeDisk(0), 0);
  expect(await floor.admit(100 * MIB)).toBeUndefined();
});

test("a store refuses new log bytes below the floor as RESOURCE_EXHAUSTED naming the store and the figures; other writes go on", async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-floor-"));
  const location = join(dir, "store");
  const disk = fakeDisk(20 * MIB);
  const floor = await floorOn(disk, 8 * MIB);
  const store = await KvStore.open(location, { compression: false, floor, memtableBudgetBytes: memtableBudgetFor(8 * MIB) });
  try {
    const put = (n: number) => [{ type: "put" as const, key: Buffer.from(`k${n}`), value: Buffer.alloc(1024, n) }];
    await store.write(put(1), false, { newBytes: 1024 });
    disk.free = 5 * MIB;
    await floor.refresh();
    const refused = store.write(put(2), false, { newBytes: 1024 });
    await expect(refused).rejects.toBeInstanceOf(StoreWriteError);
    await expect(refused).rejects.toMatchObject({
      kind: "resource_exhausted",
      message: expect.stringMatching(
        new RegExp(`disk is full \\(${location}: 5\\.0 MiB free .* below storage\\.min_free_bytes \\(8\\.0 MiB\\)\\)`),
      ),
    });
    // Bookkeeping (metadata, the archive's ledger) is not new data: it goes on, and it is what frees space.
    await store.write(put(3), false);
    expect(await store.get(Buffer.from("k2"))).toBeUndefined();
    expect(store.writeFault).toBeUndefined();
    disk.free = 30 * MIB;
    await store.write(put(2), false, { newBytes: 1024 });
    expect((await store.get(Buffer.from("k2")))?.length).toBe(1024);
  } finally {
    await store.close();
  }
});
