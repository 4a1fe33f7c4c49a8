import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { afterAll, expect, test } from "vitest";
import { batchOf, createGrpcLogClient, expectedJsonl, messages, testLines } from "../helpers/log-service-client.js";

/** A leader killed with SIGKILL in the middle of a long task leaves the archive readable up to its last flush. */

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BASE_TS = Date.UTC(2025, 1, 12, 10, 56, 45, 123);
const BATCH = 500;

let dir: string | undefined;
let child: ChildProcess | undefined;

afterAll(async () => {
  child?.kill("SIGKILL");
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function segmentFiles(archive: string): Promise<string[]> {
  const entries = await readdir(archive, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile() && e.name.endsWith(".jsonl.gz") && e.parentPath.endsWith(".parts/long"))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

test("after SIGKILL the task's segments hold its log up to the last flush", async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-kill-"));
  const archive = join(dir, "archive");
  const config = join(dir, "joblog.yaml");
  await writeFile(
    config,
    `server:\n  listen: 127.0.0.1:0\n  data_dir: ${join(dir, "data")}\nlog_storage:\n  flush_interval_ms: 150\n  archive:\n    type: local\n    path: ${archive}\n`,
  );
  const leader = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "leader", "--config", config], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: dir },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child = leader;
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`leader did not start: ${out}`)), 30_000);
    leader.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening on (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(`http://${m[1]}`);
      }
    });
    leader.once("exit", (code) => reject(new Error(`leader exited with ${code}: ${out}`)));
  });

  const g = createGrpcLogClient(url);
  const lines = testLines("long", BATCH);
  let pushed = 0;
  try {
    // A long task: batches keep coming until two flushes have left segments, then a few more.
    for (let i = 0; i < 2000; i++) {
      await g.client.push(messages({ task: { runId: "kill-1", task: "long" }, batch: batchOf(1 + pushed, BASE_TS, lines) }));
      pushed += BATCH;
      if ((await segmentFiles(archive)).length >= 2) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (let i = 0; i < 3; i++) {
      await g.client.push(messages({ task: { runId: "kill-1", task: "long" }, batch: batchOf(1 + pushed, BASE_TS, lines) }));
      pushed += BATCH;
    }
  } finally {
    g.close();
  }
  leader.kill("SIGKILL");
  await new Promise((resolve) => leader.once("exit", resolve));

  const segments = await segmentFiles(archive);
  expect(segments.length).toBeGreaterThanOrEqual(2);
  const archived = gunzipSync(Buffer.concat(await Promise.all(segments.map((s) => readFile(s))))).toString("utf8");
  const all = Array.from({ length: pushed / BATCH }, () => expectedJsonl("long", BASE_TS, lines)).join("");
  expect(archived.length).toBeGreaterThan(0);
  expect(archived.endsWith("\n")).toBe(true);
  expect(all.startsWith(archived)).toBe(true);
});
