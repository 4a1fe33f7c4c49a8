import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Result, type Run, RunState, TaskState } from "../../gen/joblog/v1/log_pb.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import {
  batchOf,
  createGrpcLogClient,
  expectConnectError,
  expectedJsonl,
  type GrpcLogClient,
  type LogClient,
  messages,
  parseRecords,
  readAll,
  tailToEnd,
  testLines,
} from "../helpers/log-service-client.js";

/** Runs from creation to completion: listing, describing, completing by the driver and by the idle timeout. */

const BASE_TS = Date.UTC(2025, 1, 12, 10, 56, 45, 123);
const MAX_PAGE_SIZE = 4;

let f: LeaderFixture;
let g: GrpcLogClient;
let client: LogClient;

beforeAll(async () => {
  f = await startTestLeader({ limits: { max_page_size: MAX_PAGE_SIZE } });
  g = createGrpcLogClient(f.url);
  client = g.client;
});

afterAll(async () => {
  g?.close();
  await f?.dispose();
});

interface TaskSpec {
  name: string;
  lines: number;
  complete?: { result: Result; exitCode: number; signal?: string };
}

/** Creates a run by pushing its tasks in order; returns the run as the leader reports it. */
async function createRun(
  c: LogClient,
  runId: string,
  tasks: TaskSpec[],
  place: { workspace?: string; workflow?: string } = {},
): Promise<Run> {
  for (const t of tasks) {
    await c.push(
      messages({
        task: { runId, task: t.name, workspace: place.workspace ?? "", workflow: place.workflow ?? "" },
        ...(t.lines > 0 ? { batch: batchOf(1, BASE_TS, testLines(t.name, t.lines)) } : {}),
        ...(t.complete ? { complete: t.complete } : {}),
      }),
    );
  }
  if (tasks.length === 0)
    await c.openTask({ task: { runId, task: "_run", workspace: place.workspace ?? "", workflow: place.workflow ?? "" } });
  const got = await c.getRun({ runId });
  if (!got.run) throw new Error(`GetRun ${runId} returned no run`);
  return got.run;
}

/**
 * Start times have millisecond resolution; runs created within one millisecond
 * have no defined order. Waits (bounded) until the clock passes `run`'s start so
 * the next run is strictly newer.
 */
async function afterStartOf(run: Run): Promise<void> {
  const started = run.startedAt ? timestampMs(run.startedAt) : Date.now();
  for (let i = 0; i < 1000 && Date.now() <= started; i++) await new Promise((resolve) => setTimeout(resolve, 1));
  expect(Date.now()).toBeGreaterThan(started);
}

async function listAll(c: LogClient, filter: { workspace?: string; workflow?: string; state?: RunState }, pageSize: number) {
  const ids: string[] = [];
  let pageToken = "";
  for (let page = 0; page < 100; page++) {
    const r = await c.listRuns({ ...filter, pageSize, pageToken });
    expect(r.runs.length).toBeLessThanOrEqual(pageSize);
    ids.push(...r.runs.map((x) => x.runId));
    if (r.nextPageToken === "") return ids;
    pageToken = r.nextPageToken;
  }
  throw new Error("listing did not end within 100 pages");
}

describe("ListRuns", () => {
  // Created oldest first; workspace, workflow and whether the run gets completed.
  const specs: Array<[string, string, string, boolean]> = [
    ["list-1", "ws-list-a", "build", false],
    ["list-2", "ws-list-a", "deploy", true],
    ["list-3", "ws-list-b", "build", false],
    ["list-4", "ws-list-a", "build", true],
    ["list-5", "ws-list-b", "deploy", false],
    ["list-6", "ws-list-a", "build", false],
    ["list-7", "ws-list-b", "build", true],
  ];
  const newestFirst = (pick: (s: (typeof specs)[number]) => boolean) =>
    specs
      .filter(pick)
      .map(([id]) => id)
      .reverse();

  beforeAll(async () => {
    for (const [runId, workspace, workflow, complete] of specs) {
      const run = await createRun(client, runId, [{ name: "t", lines: 1 }], { workspace, workflow });
      if (complete) await client.completeRun({ runId, result: Result.SUCCEEDED });
      await afterStartOf(run);
    }
  });

  const ours = (ids: string[]) => ids.filter((id) => id.startsWith("list-"));

  test("lists runs newest first", async () => {
    expect(ours(await listAll(client, {}, MAX_PAGE_SIZE))).toEqual(newestFirst(() => true));
    const r = await client.listRuns({ pageSize: MAX_PAGE_SIZE });
    const starts = r.runs.map((x) => (x.startedAt ? timestampMs(x.startedAt) : 0));
    expect(starts).toEqual([...starts].sort((a, b) => b - a));
  });

  test("filters by workspace, workflow and state", async () => {
    expect(await listAll(client, { workspace: "ws-list-a" }, MAX_PAGE_SIZE)).toEqual(newestFirst(([, ws]) => ws === "ws-list-a"));
    expect(await listAll(client, { workspace: "ws-list-a", workflow: "build" }, MAX_PAGE_SIZE)).toEqual(
      newestFirst(([, ws, wf]) => ws === "ws-list-a" && wf === "build"),
    );
    expect(ours(await listAll(client, { workflow: "deploy" }, MAX_PAGE_SIZE))).toEqual(newestFirst(([, , wf]) => wf === "deploy"));
    expect(ours(await listAll(client, { state: RunState.COMPLETED }, MAX_PAGE_SIZE))).toEqual(newestFirst(([, , , done]) => done));
    expect(ours(await listAll(client, { state: RunState.RUNNING }, MAX_PAGE_SIZE))).toEqual(newestFirst(([, , , done]) => !done));
    expect(await listAll(client, { workspace: "ws-list-b", state: RunState.RUNNING }, MAX_PAGE_SIZE)).toEqual(
      newestFirst(([, ws, , done]) => ws === "ws-list-b" && !done),
    );
    expect(await listAll(client, { workspace: "ws-list-none" }, MAX_PAGE_SIZE)).toEqual([]);
    const page = await client.listRuns({ workspace: "ws-list-b", workflow: "deploy" });
    expect(page.runs).toHaveLength(1);
    expect(page.runs[0]).toMatchObject({
      runId: "list-5",
      workspace: "ws-list-b",
      workflow: "deploy",
      state: RunState.RUNNING,
      taskCount: 1,
    });
  });

  test.each([1, 2, 3])("pages of %i cover every run exactly once, in order", async (pageSize) => {
    expect(ours(await listAll(client, {}, pageSize))).toEqual(newestFirst(() => true));
    expect(await listAll(client, { workspace: "ws-list-a" }, pageSize)).toEqual(newestFirst(([, ws]) => ws === "ws-list-a"));
    expect(ours(await listAll(client, { state: RunState.COMPLETED }, pageSize))).toEqual(newestFirst(([, , , done]) => done));
  });

  test("a page_size above limits.max_page_size is capped", async () => {
    const r = await client.listRuns({ pageSize: 1000 });
    expect(r.runs).toHaveLength(MAX_PAGE_SIZE);
    expect(r.nextPageToken).not.toBe("");
  });
});

describe("GetRun", () => {
  test("returns the run and its tasks in the order opened, with state, result, exit code, length, record count and times", async () => {
    const runId = "getrun-1";
    const before = Date.now();
    await createRun(
      client,
      runId,
      [
        { name: "zeta", lines: 3, complete: { result: Result.SUCCEEDED, exitCode: 0 } },
        { name: "alpha", lines: 2, complete: { result: Result.FAILED, exitCode: 3 } },
        { name: "killed", lines: 1, complete: { result: Result.FAILED, exitCode: -1, signal: "SIGKILL" } },
        { name: "mid", lines: 4 },
        { name: "empty", lines: 0 },
      ],
      { workspace: "ws-get", workflow: "wf-get" },
    );
    const after = Date.now();
    const got = await client.getRun({ runId });

    expect(got.run).toMatchObject({ runId, workspace: "ws-get", workflow: "wf-get", state: RunState.RUNNING, taskCount: 5 });
    expect(got.run?.result).toBe(Result.UNSPECIFIED);
    expect(got.run?.endedAt).toBeUndefined();
    const runStart = got.run?.startedAt ? timestampMs(got.run.startedAt) : 0;
    expect(runStart).toBeGreaterThanOrEqual(before);
    expect(runStart).toBeLessThanOrEqual(after);

    const summary = got.tasks.map((t) => ({
      name: t.name,
      state: t.state,
      result: t.result,
      exitCode: t.exitCode,
      signal: t.signal,
      recordCount: t.recordCount,
      ended: t.endedAt !== undefined,
    }));
    expect(summary).toEqual([
      { name: "zeta", state: TaskState.COMPLETED, result: Result.SUCCEEDED, exitCode: 0, signal: "", recordCount: 3n, ended: true },
      { name: "alpha", state: TaskState.COMPLETED, result: Result.FAILED, exitCode: 3, signal: "", recordCount: 2n, ended: true },
      { name: "killed", state: TaskState.COMPLETED, result: Result.FAILED, exitCode: -1, signal: "SIGKILL", recordCount: 1n, ended: true },
      { name: "mid", state: TaskState.RUNNING, result: Result.UNSPECIFIED, exitCode: 0, signal: "", recordCount: 4n, ended: false },
      { name: "empty", state: TaskState.RUNNING, result: Result.UNSPECIFIED, exitCode: 0, signal: "", recordCount: 0n, ended: false },
    ]);
    for (const t of got.tasks) {
      expect(t.length).toBe(BigInt((await readAll(client, runId, t.name)).length));
      const started = t.startedAt ? timestampMs(t.startedAt) : 0;
      expect(started).toBeGreaterThanOrEqual(runStart);
      expect(started).toBeLessThanOrEqual(after);
      if (t.endedAt) expect(timestampMs(t.endedAt)).toBeGreaterThanOrEqual(started);
    }
    expect(got.tasks[0]?.length).toBe(BigInt(Buffer.byteLength(expectedJsonl("zeta", BASE_TS, testLines("zeta", 3)))));

    const runLog = (await readAll(client, runId, "_run")).text;
    expect(got.runLog).toMatchObject({ name: "_run", state: TaskState.RUNNING, length: BigInt(Buffer.byteLength(runLog)) });
    expect(got.runLog?.recordCount).toBe(BigInt(parseRecords(runLog).length));
    expect(got.serverEvents).toMatchObject({ name: "_server", state: TaskState.RUNNING, recordCount: 0n, length: 0n });
  });

  test("a run without tasks has a task count of 0 and an empty task list", async () => {
    await createRun(client, "getrun-empty", []);
    const got = await client.getRun({ runId: "getrun-empty" });
    expect(got.run).toMatchObject({ runId: "getrun-empty", workspace: "default", workflow: "default", taskCount: 0 });
    expect(got.tasks).toEqual([]);
  });
});

describe("CompleteRun", () => {
  test("completes the run: `_run` ends with a run-completed record, tails of `_run`, `_server` and a running task end, the running task is closed as failed", async () => {
    const runId = "complete-1";
    await createRun(client, runId, [
      { name: "done", lines: 2, complete: { result: Result.SUCCEEDED, exitCode: 0 } },
      { name: "hanging", lines: 2 },
    ]);
    // Follow the logs that must end, and see each has sent what it holds before completing the run.
    const tails = ["_run", "_server", "hanging"].map((task) => {
      const stream = client.tail({ runId, task })[Symbol.asyncIterator]();
      return { task, stream };
    });
    const firsts = await Promise.all(
      tails.filter((t) => t.task !== "_server").map(async (t) => ({ task: t.task, first: await t.stream.next() })),
    );
    for (const { first } of firsts) expect(first.done).toBe(false);

    const response = await client.completeRun({ runId, result: Result.SUCCEEDED });
    expect(response.run).toMatchObject({ runId, state: RunState.COMPLETED, result: Result.SUCCEEDED });
    expect(response.run?.endedAt).toBeDefined();

    const ended = await Promise.all(
      tails.map(async ({ task, stream }) => {
        const first = firsts.find((x) => x.task === task)?.first;
        const rest = { [Symbol.asyncIterator]: () => stream };
        const head = first && !first.done ? Buffer.from(first.value.data).toString("utf8") : "";
        const from = first && !first.done ? first.value.nextOffset : 0n;
        return { task, text: head + (await tailToEnd(rest, from)) };
      }),
    );
    const text = (task: string) => ended.find((e) => e.task === task)?.text ?? "";

    const runLog = parseRecords(text("_run"));
    expect(runLog.at(-1)).toMatchObject({ stream: "stdout", step: "_run", line: "run completed: succeeded (completed by the driver)" });
    expect(text("_run")).toBe((await readAll(client, runId, "_run")).text);
    expect(parseRecords(text("_server"))).toEqual([
      {
        ts: expect.any(String),
        stream: "stderr",
        step: "_server",
        line: "task hanging was still running when the run completed; closed as failed",
      },
    ]);
    expect(text("hanging")).toBe(expectedJsonl("hanging", BASE_TS, testLines("hanging", 2)));

    const got = await client.getRun({ runId });
    expect(got.run).toMatchObject({ state: RunState.COMPLETED, result: Result.SUCCEEDED });
    expect(got.tasks.map((t) => [t.name, t.state, t.result, t.exitCode])).toEqual([
      ["done", TaskState.COMPLETED, Result.SUCCEEDED, 0],
      ["hanging", TaskState.COMPLETED, Result.FAILED, -1],
    ]);
    expect(got.runLog?.state).toBe(TaskState.COMPLETED);
    expect(got.serverEvents).toMatchObject({ state: TaskState.COMPLETED, recordCount: 1n });
    const listed = await client.listRuns({ state: RunState.COMPLETED, pageSize: MAX_PAGE_SIZE });
    expect(listed.runs.map((r) => r.runId)).toContain(runId);
  });

  test("after completion, Push and OpenTask to the run are FAILED_PRECONDITION and store nothing", async () => {
    const runId = "complete-2";
    await createRun(client, runId, [{ name: "build", lines: 2 }]);
    await client.completeRun({ runId, result: Result.FAILED });
    const before = await readAll(client, runId, "build");

    await expectConnectError(
      client.push(messages({ task: { runId, task: "build" }, batch: batchOf(3, BASE_TS, testLines("late", 1)) })),
      Code.FailedPrecondition,
      runId,
      "completed",
    );
    await expectConnectError(
      client.push(messages({ task: { runId, task: "new-task" }, batch: batchOf(1, BASE_TS, testLines("late", 1)) })),
      Code.FailedPrecondition,
      runId,
      "completed",
    );
    await expectConnectError(client.openTask({ task: { runId, task: "_run" } }), Code.FailedPrecondition, runId, "completed");
    expect(await readAll(client, runId, "build")).toEqual(before);
    expect((await client.getRun({ runId })).tasks.map((t) => t.name)).toEqual(["build"]);
  });

  test("completing again with the same result succeeds; with another result it is FAILED_PRECONDITION", async () => {
    const runId = "complete-3";
    await createRun(client, runId, [{ name: "a", lines: 1, complete: { result: Result.FAILED, exitCode: 1 } }]);
    const first = await client.completeRun({ runId, result: Result.FAILED });
    const runLog = await readAll(client, runId, "_run");
    const again = await client.completeRun({ runId, result: Result.FAILED });
    expect(again.run).toEqual(first.run);
    await expectConnectError(client.completeRun({ runId, result: Result.SUCCEEDED }), Code.FailedPrecondition, runId, "failed");
    expect(await readAll(client, runId, "_run")).toEqual(runLog);
    expect((await client.getRun({ runId })).run).toMatchObject({ state: RunState.COMPLETED, result: Result.FAILED });
  });
});

describe("workspace and workflow of an existing run", () => {
  test("opening a task with another workspace or workflow is FAILED_PRECONDITION naming it; empty means the run's own", async () => {
    const runId = "place-1";
    await createRun(client, runId, [{ name: "first", lines: 1 }], { workspace: "ws-place", workflow: "wf-place" });
    await expectConnectError(
      client.openTask({ task: { runId, task: "second", workspace: "ws-other" } }),
      Code.FailedPrecondition,
      "workspace ws-place",
      "ws-other",
    );
    await expectConnectError(
      client.push(messages({ task: { runId, task: "second", workspace: "ws-other" }, batch: batchOf(1, BASE_TS, testLines("x", 1)) })),
      Code.FailedPrecondition,
      "workspace",
    );
    await expectConnectError(
      client.openTask({ task: { runId, task: "second", workspace: "ws-place", workflow: "wf-other" } }),
      Code.FailedPrecondition,
      "workflow wf-place",
      "wf-other",
    );
    expect((await client.getRun({ runId })).tasks.map((t) => t.name)).toEqual(["first"]);

    const opened = await client.openTask({ task: { runId, task: "second" } });
    expect(opened.state).toBe(TaskState.RUNNING);
    const got = await client.getRun({ runId });
    expect(got.run).toMatchObject({ workspace: "ws-place", workflow: "wf-place", taskCount: 2 });
    expect(got.tasks.map((t) => t.name)).toEqual(["first", "second"]);
  });
});

describe("idle completion", () => {
  let idle: LeaderFixture;
  let ig: GrpcLogClient;

  beforeAll(async () => {
    idle = await startTestLeader({ runs: { idle_timeout_seconds: 1 } });
    ig = createGrpcLogClient(idle.url);
  });

  afterAll(async () => {
    ig?.close();
    await idle?.dispose();
  });

  /** Polls GetRun until the run is completed; there is no event to await for the leader's sweep. */
  async function waitForCompletion(runId: string): Promise<Run> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const run = (await ig.client.getRun({ runId })).run;
      if (run?.state === RunState.COMPLETED) return run;
      if (Date.now() > deadline) throw new Error(`run ${runId} was not completed by the leader within 15 s`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  test("runs whose tasks are all complete are completed by the leader, failed if any task failed; a run with a running task is not", async () => {
    const c = ig.client;
    // Created first, so it is idle at least as long as the others when they are completed.
    await createRun(c, "idle-running", [
      { name: "finished", lines: 1, complete: { result: Result.SUCCEEDED, exitCode: 0 } },
      { name: "still-running", lines: 1 },
    ]);
    await createRun(c, "idle-failed", [
      { name: "ok", lines: 2, complete: { result: Result.SUCCEEDED, exitCode: 0 } },
      { name: "broken", lines: 1, complete: { result: Result.FAILED, exitCode: 2 } },
    ]);
    await createRun(c, "idle-succeeded", [{ name: "ok", lines: 1, complete: { result: Result.SUCCEEDED, exitCode: 0 } }]);

    const [failed, succeeded] = await Promise.all([waitForCompletion("idle-failed"), waitForCompletion("idle-succeeded")]);
    expect(failed).toMatchObject({ state: RunState.COMPLETED, result: Result.FAILED });
    expect(succeeded).toMatchObject({ state: RunState.COMPLETED, result: Result.SUCCEEDED });

    for (const [runId, result] of [
      ["idle-failed", "failed"],
      ["idle-succeeded", "succeeded"],
    ] as const) {
      const events = parseRecords((await readAll(c, runId, "_server")).text);
      expect(events).toContainEqual({
        ts: expect.any(String),
        stream: "stderr",
        step: "_server",
        line: "run completed by the leader: all tasks complete and idle for 1s",
      });
      const runLog = await readAll(c, runId, "_run");
      expect(runLog.complete).toBe(true);
      expect(parseRecords(runLog.text).at(-1)?.line).toBe(`run completed: ${result} (completed by the leader after 1s idle)`);
    }

    const running = await c.getRun({ runId: "idle-running" });
    expect(running.run?.state).toBe(RunState.RUNNING);
    expect(running.tasks.find((t) => t.name === "still-running")?.state).toBe(TaskState.RUNNING);
    expect(parseRecords((await readAll(c, "idle-running", "_server")).text)).toEqual([]);

    // Once its last task completes, it too is completed by the leader.
    await c.push(messages({ task: { runId: "idle-running", task: "still-running" }, complete: { result: Result.SUCCEEDED, exitCode: 0 } }));
    expect(await waitForCompletion("idle-running")).toMatchObject({ result: Result.SUCCEEDED });
  });
});
