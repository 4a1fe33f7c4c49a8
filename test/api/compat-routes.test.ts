import { afterAll, beforeAll, describe, expect, test } from "vitest";
import WebSocket from "ws";
import { Result } from "../../gen/joblog/v1/log_pb.js";
import { TaskLogWriter } from "../../src/worker/task-log-writer.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import { createGrpcLogClient, type GrpcLogClient, parseRecords } from "../helpers/log-service-client.js";

let fixture: LeaderFixture;
let grpc: GrpcLogClient;

beforeAll(async () => {
  fixture = await startTestLeader();
  grpc = createGrpcLogClient(fixture.url);
});

afterAll(async () => {
  grpc?.close();
  await fixture?.dispose();
});

const writer = (runId: string, task: string) =>
  TaskLogWriter.open({ leader: fixture.url, runId, task, settings: { batchMaxIntervalMs: 10 } });

describe("GET /api/jobs/{run_id}/steps/{task}/logs", () => {
  test('returns {"logs": the task\'s text}, for tasks, the run log and server events', async () => {
    const w = writer("compat-1", "build");
    w.write("stdout", "first");
    w.write("stderr", 'second "quoted" \x1b[31mred\x1b[0m');
    await w.flush();
    await grpc.client.completeRun({ runId: "compat-1", result: Result.FAILED });
    await w.abort();

    const build = await fetch(`${fixture.url}/api/jobs/compat-1/steps/build/logs`);
    expect(build.status).toBe(200);
    expect(build.headers.get("content-type")).toContain("application/json");
    expect(await build.json()).toEqual({ logs: 'first\nsecond "quoted" \x1b[31mred\x1b[0m\n' });

    const events = (await (await fetch(`${fixture.url}/api/jobs/compat-1/steps/_server/logs`)).json()) as { logs: string };
    expect(events.logs).toContain("task build was still running when the run completed");
    const runLog = (await (await fetch(`${fixture.url}/api/jobs/compat-1/steps/_run/logs`)).json()) as { logs: string };
    expect(runLog.logs).toContain("task build started");
  });

  test("answers like the RPCs when something is wrong", async () => {
    const missingRun = await fetch(`${fixture.url}/api/jobs/no-such-run/steps/build/logs`);
    expect(missingRun.status).toBe(404);
    expect(await missingRun.json()).toEqual({ error: "run no-such-run not found" });
    const badId = await fetch(`${fixture.url}/api/jobs/bad%20id/steps/build/logs`);
    expect(badId.status).toBe(400);
    expect(((await badId.json()) as { error: string }).error).toContain("run_id");
    const post = await fetch(`${fixture.url}/api/jobs/compat-1/steps/build/logs`, { method: "POST" });
    expect(post.status).toBe(405);
    expect((await fetch(`${fixture.url}/api/nothing`)).status).toBe(404);
  });
});

describe("WebSocket /api/jobs/{run_id}/logs/stream", () => {
  /** Records received, in arrival order, and the close code once closed. */
  function connect(runId: string) {
    const ws = new WebSocket(`ws://${fixture.leader.address}/api/jobs/${runId}/logs/stream`);
    const records: Array<{ step: string; line: string }> = [];
    let onRecord: (() => void) | undefined;
    ws.on("message", (data) => {
      records.push(...parseRecords(String(data)));
      onRecord?.();
    });
    const closed = new Promise<number>((resolve) => ws.on("close", (code) => resolve(code)));
    const opened = new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      ws.once("error", reject);
    });
    const until = (check: () => boolean) =>
      new Promise<void>((resolve) => {
        if (check()) return resolve();
        onRecord = () => {
          if (check()) resolve();
        };
      });
    return { ws, records, closed, opened, until };
  }

  test("sends what the run's logs hold, then new lines of every task as they arrive, and closes when the run completes", async () => {
    const build = writer("stream-1", "build");
    build.write("stdout", "backfill 1");
    build.write("stdout", "backfill 2");
    await build.flush();

    const client = connect("stream-1");
    await client.opened;
    await client.until(() => client.records.filter((r) => r.step === "build").length === 2);
    expect(client.records.some((r) => r.step === "_run" && r.line === "task build started")).toBe(true);

    build.write("stdout", "live 3");
    await build.complete({ result: "succeeded", exitCode: 0 });
    // A task opened after the socket connected is followed too.
    const late = writer("stream-1", "late");
    late.write("stderr", "late line");
    await late.complete({ result: "succeeded", exitCode: 0 });
    await client.until(() => client.records.some((r) => r.step === "late"));

    await grpc.client.completeRun({ runId: "stream-1", result: Result.SUCCEEDED });
    expect(await client.closed).toBe(1000);
    const lines = (step: string) => client.records.filter((r) => r.step === step).map((r) => r.line);
    expect(lines("build")).toEqual(["backfill 1", "backfill 2", "live 3"]);
    expect(lines("late")).toEqual(["late line"]);
    expect(lines("_run")[0]).toContain("run stream-1 started");
    expect(lines("_run").at(-1)).toContain("run completed: succeeded");
  });

  test("refuses an unknown run with 404 before upgrading", async () => {
    const client = connect("no-such-run");
    await expect(client.opened).rejects.toThrow("HTTP 404");
  });
});
