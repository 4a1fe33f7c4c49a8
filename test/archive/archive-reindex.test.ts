import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { Result, RunState } from "../../gen/joblog/v1/log_pb.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import {
  batchOf,
  createGrpcLogClient,
  type GrpcLogClient,
  messages,
  readAll,
  tailToEnd,
  testLines,
} from "../helpers/log-service-client.js";

/**
 * The archive as the system of record: a leader that lost its data directory,
 * started empty with the same `log_storage`, serves every archived run exactly as
 * the leader that archived it did.
 */

const BASE_TS = Date.UTC(2025, 1, 12, 10, 56, 45, 123);
const RUNS = [
  { runId: "rx-1", workspace: "ws-a", workflow: "build", tasks: ["compile", "test"], fail: "test" },
  { runId: "rx-2", workspace: "ws-a", workflow: "deploy", tasks: ["push"], fail: undefined },
  { runId: "rx-3", workspace: "ws-b", workflow: "build", tasks: ["compile", "lint", "package"], fail: undefined },
] as const;

let dir: string;
let archiveDir: string;
let f: LeaderFixture;
let g: GrpcLogClient;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-reindex-"));
  archiveDir = join(dir, "archive");
  f = await startTestLeader({ log_storage: { flush_interval_ms: 100, archive: { type: "local", path: archiveDir, prefix: "ci/" } } });
  g = createGrpcLogClient(f.url);
});

afterAll(async () => {
  g?.close();
  await f?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function filesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(root.length + 1));
}

async function fill(): Promise<void> {
  for (const [r, run] of RUNS.entries()) {
    for (const [t, name] of run.tasks.entries()) {
      const task = { runId: run.runId, task: name, workspace: run.workspace, workflow: run.workflow };
      const lines = testLines(`${run.runId}-${name}`, 40 + 30 * t + 7 * r);
      const failed = run.fail === name;
      await g.client.push(
        messages(
          { task, batch: batchOf(1, BASE_TS + r * 60_000, lines) },
          { task, complete: { result: failed ? Result.FAILED : Result.SUCCEEDED, exitCode: failed ? 2 : 0 } },
        ),
      );
    }
    await g.client.completeRun({ runId: run.runId, result: run.fail ? Result.FAILED : Result.SUCCEEDED });
  }
}

/** Every run's object and index are written and its segments removed: the archive is final. */
async function archived(): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const files = await filesUnder(archiveDir);
    const objects = files.filter((file) => file.endsWith(".jsonl.gz") && !file.includes(".parts"));
    if (objects.length === RUNS.length && files.filter((file) => file.includes(".parts")).length === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the archive did not become final: ${(await filesUnder(archiveDir)).join(", ")}`);
}

/** Everything a user can ask of the leader about the runs, in one comparable value. */
async function answers(client: GrpcLogClient["client"], url: string) {
  const listings = {
    all: await client.listRuns({}),
    wsA: await client.listRuns({ workspace: "ws-a" }),
    build: await client.listRuns({ workspace: "ws-b", workflow: "build" }),
    completed: await client.listRuns({ state: RunState.COMPLETED }),
    pages: [] as unknown[],
  };
  let pageToken = "";
  for (let i = 0; i < 10; i++) {
    const page = await client.listRuns({ pageSize: 1, pageToken });
    listings.pages.push(page);
    pageToken = page.nextPageToken;
    if (pageToken === "") break;
  }
  const runs: Record<string, unknown> = {};
  for (const run of RUNS) {
    const logs: Record<string, unknown> = {};
    for (const task of [...run.tasks, "_run", "_server"]) {
      const whole = await readAll(client, run.runId, task);
      const rest = await fetch(`${url}/api/jobs/${run.runId}/steps/${task}/logs`);
      logs[task] = {
        whole,
        middle: await client.read({ runId: run.runId, task, offset: BigInt(Math.floor(whole.length / 2)), maxBytes: 300 }),
        tail: await tailToEnd(client.tail({ runId: run.runId, task })),
        rest: { status: rest.status, body: await rest.text() },
      };
    }
    const first = run.tasks[0];
    const search = [];
    for await (const found of client.search({ runId: run.runId, task: first, query: "line 1" })) search.push(found);
    runs[run.runId] = {
      get: await client.getRun({ runId: run.runId }),
      logs,
      search,
      locate: await client.locateLine({ runId: run.runId, task: first, lineNumber: 3n }),
    };
  }
  return { listings, runs };
}

test("a leader started on an empty data directory serves every archived run exactly as the one that archived it", async () => {
  await fill();
  await archived();
  const before = await answers(g.client, f.url);
  expect(before.listings.all.runs.map((r) => r.runId).sort()).toEqual(["rx-1", "rx-2", "rx-3"]);

  // A foreign object and a damaged index in the archive: skipped with a message, never a crash.
  const foreign = join(archiveDir, "ci/ws-a/build/2025/01/01/2025-01-01T00-00-00_junk-1.index.json");
  await mkdir(join(foreign, ".."), { recursive: true });
  await writeFile(foreign, "not json");
  const moved = join(archiveDir, "ci/ws-a/build/2025/01/01/2025-01-01T00-00-00_moved-1.index.json");
  await writeFile(
    moved,
    JSON.stringify({
      version: 1,
      runId: "moved-1",
      workspace: "ws-a",
      workflow: "build",
      startedAt: new Date(BASE_TS).toISOString(),
      size: 0,
      tasks: [],
    }),
  );

  // The disk is lost: nothing of the data directory is left, not even the master key.
  await f.restart({ between: () => rm(f.dataDir, { recursive: true, force: true }) });
  const after = async () => answers(g.client, f.url);
  let listed = 0;
  for (let i = 0; i < 200 && listed < RUNS.length; i++) {
    listed = (await g.client.listRuns({})).runs.length;
    if (listed < RUNS.length) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  expect(await after()).toEqual(before);
  expect(f.logs.join("\n")).toMatch(/archive reindex: .*junk-1\.index\.json is not a joblog run index.*skipped/);
  expect(f.logs.join("\n")).toMatch(/archive reindex: .*moved-1\.index\.json does not lie where .*skipped/);
  expect(f.logs.join("\n")).toMatch(/archive reindex: 3 runs adopted .*\(5 run indexes, 2 skipped\)/);

  // A restart that keeps the data directory adopts nothing again, and still serves the same.
  const logged = f.logs.length;
  await f.restart();
  expect(await after()).toEqual(before);
  expect(f.logs.slice(logged).join("\n")).toMatch(/archive reindex: 0 runs adopted .*\(5 run indexes, 2 skipped\)/);
});
