import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ArchiveKeyError } from "../../src/archive/archive-backend.js";
import { runIndexKey, runKeyBase, runObjectKey, segmentKey } from "../../src/archive/archive-key.js";
import { LocalBackend } from "../../src/archive/local-backend.js";
import { LegacyLogs } from "../../src/read/legacy-log.js";

const run = { runId: "r-42", workspace: "acme", workflow: "nightly-build", startedAt: Date.UTC(2025, 1, 3, 4, 5, 6, 789) };

describe("archive keys", () => {
  test("follow {prefix}{workspace}/{workflow}/YYYY/MM/DD/YYYY-MM-DDTHH-MM-SS_{run_id}.jsonl.gz in UTC from the run's start", () => {
    const base = runKeyBase("logs/", run);
    expect(runObjectKey(base)).toBe("logs/acme/nightly-build/2025/02/03/2025-02-03T04-05-06_r-42.jsonl.gz");
    expect(runIndexKey(base)).toBe("logs/acme/nightly-build/2025/02/03/2025-02-03T04-05-06_r-42.index.json");
    expect(segmentKey(base, "build", 1234, 5678)).toBe(
      "logs/acme/nightly-build/2025/02/03/2025-02-03T04-05-06_r-42.parts/build/0000000000001234-0000000000005678.jsonl.gz",
    );
    expect(runObjectKey(runKeyBase("", run))).toBe("acme/nightly-build/2025/02/03/2025-02-03T04-05-06_r-42.jsonl.gz");
  });

  test.each([
    ["run_id", { ...run, runId: "../../etc/passwd" }],
    ["run_id", { ...run, runId: "a/b" }],
    ["workspace", { ...run, workspace: ".." }],
    ["workflow", { ...run, workflow: "x/../../y" }],
    ["workspace", { ...run, workspace: "" }],
  ])("refuse a %s that would leave the prefix", (field, place) => {
    expect(() => runKeyBase("logs/", place)).toThrow(field);
  });

  test("refuse a task that would leave the run's segments", () => {
    const base = runKeyBase("logs/", run);
    expect(() => segmentKey(base, "../other-run", 0, 1)).toThrow("task");
    expect(() => segmentKey(base, "a/b", 0, 1)).toThrow("task");
  });
});

describe("local backend paths", () => {
  let dir: string;
  let backend: LocalBackend;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "joblog-local-keys-"));
    backend = new LocalBackend(join(dir, "archive"), { attempts: 1, initialMs: 1, maxMs: 1 });
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("map keys to subdirectories of the archive directory", () => {
    expect(backend.pathOf("a/b/c.jsonl.gz")).toBe(join(dir, "archive", "a", "b", "c.jsonl.gz"));
  });

  test.each(["../escape", "a/../../escape", "/etc/passwd", "a//b", "a/./b", "a\\..\\b", "a/\0b", ""])("refuse the key %j", async (key) => {
    expect(() => backend.pathOf(key)).toThrow(ArchiveKeyError);
    await expect(backend.put(key, Buffer.from("x"))).rejects.toThrow(ArchiveKeyError);
    await expect(backend.get(key)).rejects.toThrow(ArchiveKeyError);
  });

  test("legacy logs refuse run ids that would leave local_dir", async () => {
    const legacy = new LegacyLogs(dir, 1024);
    await expect(legacy.state("../x")).rejects.toThrow("unsafe run id");
    await expect(legacy.state("a/b")).rejects.toThrow("unsafe run id");
  });
});
