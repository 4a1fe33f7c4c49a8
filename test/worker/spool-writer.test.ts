import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, test } from "vitest";
import { LeaderClient } from "../../src/client/leader-client.js";
import { TaskLogWriter } from "../../src/worker/task-log-writer.js";
import { ciLine, expectedRecord } from "../helpers/expected-jsonl.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import { readAll, TS0 } from "../helpers/task-logs.js";

let f: LeaderFixture | undefined;
let spoolDir: string | undefined;
afterAll(async () => {
  await f?.dispose();
  if (spoolDir) await rm(spoolDir, { recursive: true, force: true });
});

test("with a spool, a writer keeps taking lines while the leader is down, delivers them all after, and removes its files", async () => {
  f = await startTestLeader();
  const dir = await mkdtemp(join(tmpdir(), "joblog-spool-writer-"));
  spoolDir = dir;
  const writer = TaskLogWriter.open({
    leader: f.url,
    runId: "spooled",
    task: "build",
    settings: { bufferMaxBytes: 64 * 1024, spoolDir: dir, backoffInitialMs: 20, backoffMaxMs: 200 },
  });
  let expected = "";
  let line = 0;
  const write = (count: number) => {
    let heldBack = 0;
    for (let end = line + count; line < end; line++) {
      const text = ciLine("build", line);
      expected += expectedRecord(TS0 + line, "stdout", "build", text);
      if (!writer.write("stdout", text, TS0 + line)) heldBack++;
    }
    return heldBack;
  };
  write(1000);
  await writer.flush();
  let heldBack = 0;
  await f.restart({
    between: async () => {
      // ~3 MB while the leader is away: 50 times the memory bound, and the writer never says wait.
      heldBack = write(30_000);
      expect((await readdir(dir)).length).toBe(1);
    },
  });
  expect(heldBack).toBe(0);
  write(1000);
  await writer.complete({ result: "succeeded", exitCode: 0 });
  const client = new LeaderClient(f.url);
  try {
    expect(await readAll(client, "spooled", "build")).toBe(expected);
  } finally {
    client.close();
  }
  expect(await readdir(dir)).toEqual([]);
});
