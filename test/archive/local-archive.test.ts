import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Result } from "../../gen/joblog/v1/log_pb.js";
import { expectedRecord } from "../helpers/expected-jsonl.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import {
  batchOf,
  createGrpcLogClient,
  expectConnectError,
  type GrpcLogClient,
  messages,
  readAll,
  tailToEnd,
  testLines,
} from "../helpers/log-service-client.js";

/** The local-directory archive, the legacy plain-text tier, and identifiers that try to leave their directory. */

const BASE_TS = Date.UTC(2025, 1, 12, 10, 56, 45, 123);

let dir: string;
let f: LeaderFixture;
let g: GrpcLogClient;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-local-archive-"));
  f = await startTestLeader({
    log_storage: {
      flush_interval_ms: 200,
      local_dir: join(dir, "legacy"),
      archive: { type: "local", path: join(dir, "archive"), prefix: "ci/" },
    },
  });
  g = createGrpcLogClient(f.url);
});

afterAll(async () => {
  g?.close();
  await f?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function filesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(root.length + 1))
    .sort();
}

describe("local archive", () => {
  test("writes the run's object under the directory, which zcat turns into the run's JSONL; reads after the drop still work", async () => {
    const runId = "local-1";
    const task = { runId, task: "compile", workspace: "team", workflow: "ci" };
    await g.client.push(messages({ task, batch: batchOf(1, BASE_TS, testLines("compile", 250)) }));
    const compile = (await readAll(g.client, runId, "compile")).text;
    await g.client.push(messages({ task, complete: { result: Result.SUCCEEDED, exitCode: 0 } }));
    const run = (await g.client.completeRun({ runId, result: Result.SUCCEEDED })).run;
    const started = new Date(run?.startedAt ? timestampMs(run.startedAt) : 0).toISOString();
    const day = started.slice(0, 10);
    const name = `ci/team/ci/${day.replaceAll("-", "/")}/${day}T${started.slice(11, 19).replaceAll(":", "-")}_${runId}`;

    let files: string[] = [];
    for (let i = 0; i < 400 && !(files.length === 2 && files.includes(`${name}.jsonl.gz`)); i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      files = await filesUnder(join(dir, "archive"));
    }
    expect(files).toEqual([`${name}.index.json`, `${name}.jsonl.gz`]);
    const unzipped = execFileSync("zcat", [join(dir, "archive", `${name}.jsonl.gz`)]).toString("utf8");
    const runLog = (await readAll(g.client, runId, "_run")).text;
    const serverEvents = (await readAll(g.client, runId, "_server")).text;
    expect(unzipped).toBe(compile + runLog + serverEvents);
    expect((await readAll(g.client, runId, "compile")).text).toBe(compile);
    expect(await tailToEnd(g.client.tail({ runId, task: "compile" }))).toBe(compile);
  });

  test("identifiers that would leave the archive or legacy directory are refused at the edge", async () => {
    await expectConnectError(g.client.read({ runId: "../../etc/passwd", task: "x" }), Code.InvalidArgument, "run_id");
    await expectConnectError(g.client.read({ runId: "r", task: "../r2/x" }), Code.InvalidArgument, "task");
    await expectConnectError(
      g.client.push(messages({ task: { runId: "ok-run", task: "t", workspace: "..", workflow: "w" } })),
      Code.InvalidArgument,
      "workspace",
    );
  });
});

describe("legacy plain-text logs", () => {
  test("{local_dir}/{run_id}.log reads as stdout records of the run log _run, by Read and by Tail; no other task", async () => {
    const legacyDir = join(dir, "legacy");
    await rm(legacyDir, { recursive: true, force: true });
    await mkdir(legacyDir, { recursive: true });
    const path = join(legacyDir, "old-run-7.log");
    await writeFile(path, 'first line\r\nsecond "quoted"\n\nlast without newline');
    const mtime = new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6));
    await utimes(path, mtime, mtime);

    const expected = ["first line", 'second "quoted"', "", "last without newline"]
      .map((line) => expectedRecord(mtime.getTime(), "stdout", "_run", line))
      .join("");
    const all = await readAll(g.client, "old-run-7", "_run");
    expect(all).toEqual({ text: expected, length: Buffer.byteLength(expected), complete: true });
    expect(await tailToEnd(g.client.tail({ runId: "old-run-7", task: "_run" }))).toBe(expected);

    const second = Buffer.byteLength(expectedRecord(mtime.getTime(), "stdout", "_run", "first line"));
    const r = await g.client.read({ runId: "old-run-7", task: "_run", offset: BigInt(second - 3), maxBytes: 1 });
    expect(Number(r.offset)).toBe(second);
    expect(Buffer.from(r.data).toString()).toBe(expectedRecord(mtime.getTime(), "stdout", "_run", 'second "quoted"'));
    await expectConnectError(g.client.read({ runId: "old-run-7", task: "deploy" }), Code.NotFound, "task deploy", "old-run-7", "_run");
    await expectConnectError(g.client.read({ runId: "no-such-run", task: "_run" }), Code.NotFound, "run no-such-run not found");
  });
});
