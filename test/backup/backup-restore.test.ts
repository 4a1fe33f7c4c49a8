import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Result } from "../../gen/joblog/v1/log_pb.js";
import { openBackupTarget } from "../../src/backup/backup-target.js";
import { verifyBackup } from "../../src/backup/read-backup.js";
import { restoreBackup } from "../../src/backup/restore-backup.js";
import { LeaderClient } from "../../src/client/leader-client.js";
import { TaskLogWriter } from "../../src/worker/task-log-writer.js";
import { ciLine, expectedRecord } from "../helpers/expected-jsonl.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import { listedTasks, runContents } from "../helpers/run-contents.js";
import { pushTask, readAll, TS0, until } from "../helpers/task-logs.js";

/**
 * The scenario: twenty runs — complete, archived with their buffers dropped,
 * still streaming — backed up online while another task ingests, the data directory
 * lost, restored, and a leader started on it.
 */

let dir: string;
let f: LeaderFixture;
let client: LeaderClient;
const writers: TaskLogWriter[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-backup-test-"));
  f = await startTestLeader();
  client = new LeaderClient(f.url);
});

afterAll(async () => {
  await Promise.allSettled(writers.map((w) => w.abort()));
  client?.close();
  await f?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const SETTINGS = { backoffInitialMs: 20, backoffMaxMs: 200 };

/** Lines of a streaming task: numbered from `from`, with known timestamps; returns their JSONL. */
function writeLines(writer: TaskLogWriter, task: string, from: number, count: number): string {
  let expected = "";
  for (let i = from; i < from + count; i++) {
    writer.write("stdout", ciLine(task, i), TS0 + i);
    expected += expectedRecord(TS0 + i, "stdout", task, ciLine(task, i));
  }
  return expected;
}

describe("online backup and restore", () => {
  test("complete, archived and streaming runs come back byte-identical; streaming tasks resume without duplicates", async () => {
    // 7 complete runs, written before an archive was configured, so they stay in RocksDB.
    for (let r = 0; r < 7; r++) {
      await pushTask(f.url, `done-${r}`, "build", 200 + r * 50);
      await pushTask(f.url, `done-${r}`, "test", 100);
      await client.completeRun({ runId: `done-${r}`, result: r % 3 === 0 ? Result.FAILED : Result.SUCCEEDED });
    }
    const archive = join(dir, "archive");
    await f.restart({
      config: (c) => ({
        ...c,
        log_storage: { ...c.log_storage, flush_interval_ms: 200, archive: { type: "local", path: archive, prefix: "", sse: "none" } },
      }),
    });
    // 6 archived runs: completed, written to the local archive, their buffers dropped.
    for (let r = 0; r < 6; r++) {
      await pushTask(f.url, `arch-${r}`, "compile", 300);
      await client.completeRun({ runId: `arch-${r}`, result: Result.SUCCEEDED });
    }
    const archivedObjects = async () => {
      const files = await readdir(archive, { recursive: true }).catch(() => [] as string[]);
      return files.filter((name) => name.endsWith(".index.json") && !files.some((other) => other.includes(".parts")));
    };
    await until(async () => (await archivedObjects()).length === 6, 30_000);

    // 7 streaming runs: a worker has written 300 lines (durable) and goes on after the backup.
    const streaming: Array<{ run: string; writer: TaskLogWriter; expected: string }> = [];
    for (let r = 0; r < 7; r++) {
      const writer = TaskLogWriter.open({ leader: f.url, runId: `live-${r}`, task: "deploy", settings: SETTINGS });
      writers.push(writer);
      const expected = writeLines(writer, "deploy", 0, 300);
      await writer.flush();
      streaming.push({ run: `live-${r}`, writer, expected });
    }
    const before = await runContents(client, (id) => !id.startsWith("live-"));
    expect(before.size).toBe(13);
    for (const s of streaming) expect(await readAll(client, s.run, "deploy")).toBe(s.expected);

    // A firehose ingests before, during and after the backup.
    const firehose = TaskLogWriter.open({ leader: f.url, runId: "ingest", task: "firehose", settings: SETTINGS });
    writers.push(firehose);
    const firehoseText = (n: number) => expectedRecord(TS0 + n, "stdout", "firehose", ciLine("firehose", n));
    let written = 0;
    for (; written < 2000; written++) firehose.write("stdout", ciLine("firehose", written), TS0 + written);
    await firehose.flush();
    const durableBeforeBackup = written;
    let stop = false;
    const ingesting = (async () => {
      for (let guard = 0; guard < 500_000 && !stop; guard++, written++) {
        if (!firehose.write("stdout", ciLine("firehose", written), TS0 + written)) await firehose.ready();
        if (written % 500 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
    })();

    // Runs and tasks are created meanwhile: each writes the metadata store, then the log store.
    let created = 0;
    const creating = (async () => {
      for (; created < 10_000 && !stop; created++) {
        await client.openTask({ task: { runId: `new-${created >> 2}`, task: `t${created & 3}` } });
      }
    })();

    const target = join(dir, "backup");
    const phases = new Set<string>();
    let summary: { files: bigint; records: bigint; bytes: bigint; keyIds: string[] } | undefined;
    for await (const message of client.backup({ target, partBytes: 64n * 1024n })) {
      phases.add(message.phase);
      if (message.summary) summary = message.summary;
    }
    stop = true;
    await Promise.all([ingesting, creating]);
    await firehose.close();
    expect(phases.has("done")).toBe(true);
    expect(summary?.files).toBeGreaterThan(2n); // 64 KiB parts: the log store needs several
    expect(summary?.keyIds).toHaveLength(1);
    const manifest = await verifyBackup(openBackupTarget(target));
    expect(manifest.mode).toBe("online");
    expect(BigInt(manifest.totals.bytes)).toBe(summary?.bytes);
    // Chunks stay encrypted: no logged text appears in the backup's files.
    for (const name of await readdir(target)) {
      expect((await readFile(join(target, name))).includes(ciLine("build", 10))).toBe(false);
    }
    const tasksBefore = await listedTasks(client);

    // The disk is lost; the master key was kept apart. Workers write on while the leader is away.
    await f.restart({
      between: async () => {
        const key = await readFile(join(f.dataDir, "master.key"));
        await rm(f.dataDir, { recursive: true, force: true });
        await mkdir(f.dataDir);
        await writeFile(join(f.dataDir, "master.key"), key, { mode: 0o600 });
        for (const s of streaming) s.expected += writeLines(s.writer, "deploy", 300, 200);
        await restoreBackup(openBackupTarget(target), { dataDir: f.dataDir, encryption: f.config.encryption });
      },
    });

    // grpc-js shares one connection per address, backing off after the workers saw it go: wait until it is back.
    await until(() =>
      client.listRuns({ pageSize: 1 }).then(
        () => true,
        () => false,
      ),
    );
    // Every log complete before the backup began reads back byte-identical, archived ones from the archive.
    expect(await runContents(client, (id) => before.has(id))).toEqual(before);
    // The listings and the logs agree: the same runs and tasks, each with its log.
    const tasksAfter = await listedTasks(client);
    const old = ([run]: [string, string[]]) => !run.startsWith("new-");
    expect(tasksAfter.filter(old)).toEqual(tasksBefore.filter(old));
    // Of the runs created during the backup, each one restored lists only tasks that have their log, and has its run log.
    for (const [runId] of tasksAfter.filter((entry) => !old(entry))) {
      const got = await client.getRun({ runId });
      expect(got.runLog?.startedAt).toBeDefined();
      for (const task of got.tasks) expect(task.startedAt, `${runId}/${task.name}`).toBeDefined();
    }
    // The firehose's restored log is a whole-record prefix of what it wrote, holding at least what was durable before the backup.
    const ingested = await readAll(client, "ingest", "firehose");
    const lines = ingested.split("\n").length - 1;
    expect(lines).toBeGreaterThanOrEqual(durableBeforeBackup);
    expect(ingested).toBe(Array.from({ length: lines }, (_, n) => firehoseText(n)).join(""));

    // Streaming workers resume from the restored high-water mark: lines 0..499 exactly once.
    await Promise.all(streaming.map((s) => s.writer.complete({ result: "succeeded", exitCode: 0 })));
    for (const s of streaming) expect(await readAll(client, s.run, "deploy")).toBe(s.expected);
  }, 120_000);
});
