import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, expect, test } from "vitest";
import { LocalBackend } from "../../src/archive/local-backend.js";
import { SEGMENT_MAX_BYTES, uploadSegment } from "../../src/archive/segment-upload.js";
import { ChunkThread } from "../../src/crypto/chunk-thread.js";
import { splitAtRecords } from "../../src/ingest/record-encoder.js";
import { KvStore } from "../../src/store/kv-store.js";
import { LogStore } from "../../src/store/log-store.js";
import { ciLine, expectedRecord } from "../helpers/expected-jsonl.js";
import { localRunKeys } from "../helpers/local-run-keys.js";

let dir: string;
let kv: KvStore;
const sealThread = new ChunkThread();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-segments-"));
  kv = await KvStore.open(join(dir, "joblogs"), { compression: false });
});

afterAll(async () => {
  await sealThread.close();
  await kv?.close();
  await rm(dir, { recursive: true, force: true });
});

test("a backlog larger than one segment becomes contiguous segments that end on record boundaries", async () => {
  const keys = await localRunKeys(kv, dir);
  await keys.createRunKey("r1", "default");
  const store = new LogStore(kv, keys, { algorithm: "brotli", level: 1 }, sealThread);
  const records: string[] = [];
  // Record lengths that do not divide the segment size, so a byte cut would split one.
  for (let i = 0; Buffer.byteLength(records.join("")) < SEGMENT_MAX_BYTES + 1_000_000; i += 1000) {
    records.push(
      Array.from({ length: 1000 }, (_, j) =>
        expectedRecord(1_700_000_000_000 + i + j, "stdout", "big", `${ciLine("big", i + j)} ${"x".repeat((i + j) % 37)}`),
      ).join(""),
    );
  }
  const jsonl = Buffer.from(records.join(""));
  let offset = 0;
  const pieces = splitAtRecords(jsonl, 64 * 1024);
  for (let i = 0; i < pieces.length; i += 256) {
    const sealing = await keys.prepareWrite("r1");
    const chunks = pieces.slice(i, i + 256).map((data) => {
      const chunk = { key: sealing, run: "r1", task: "big", offset, data };
      offset += data.length;
      return chunk;
    });
    await kv.write(await store.sealChunks(chunks), false);
  }
  const backend = new LocalBackend(join(dir, "archive"), { attempts: 1, initialMs: 1, maxMs: 1 });
  const src = { store, backend, gzipLevel: 1 };
  const first = await uploadSegment(src, "base", "r1", "big", 0, jsonl.length);
  const second = await uploadSegment(src, "base", "r1", "big", first.members.plainEnd, jsonl.length);
  expect(first.members.plainEnd).toBeGreaterThanOrEqual(SEGMENT_MAX_BYTES);
  expect(jsonl[first.members.plainEnd - 1]).toBe(0x0a);
  expect(second.members.plainEnd).toBe(jsonl.length);
  const bodies = await Promise.all([first, second].map(async (s) => (await backend.get(s.key)) as Buffer));
  expect(gunzipSync(Buffer.concat(bodies)).equals(jsonl)).toBe(true);
});
