import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { LogService, Result } from "../../gen/joblog/v1/log_pb.js";
import { LeaderClient } from "../../src/client/leader-client.js";
import { TaskLogWriter } from "../../src/worker/task-log-writer.js";
import { ciLine, expectedRecord } from "../helpers/expected-jsonl.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import { pushTask, readAll, TS0, until } from "../helpers/task-logs.js";
import { startTcpProxy } from "../helpers/tcp-proxy.js";

/** One leader for the tests that need no special configuration; each uses run ids of its own. */
let f: LeaderFixture;
beforeAll(async () => {
  f = await startTestLeader();
});
afterAll(async () => {
  await f.dispose();
});

describe("ingest, read and tail", () => {
  let f: LeaderFixture;
  let client: LeaderClient;
  const expected = new Map<string, string>();

  beforeAll(async () => {
    // Small chunks so the logs span many keys and reads cross chunk boundaries.
    f = await startTestLeader({ storage: { chunk_bytes: 8192 }, tail: { cache_bytes_per_task: 65536 } });
    client = new LeaderClient(f.url);
  });
  afterAll(async () => {
    client.close();
    await f.dispose();
  });

  test("100,000 lines over several runs and tasks read back byte-identical, tails included", async () => {
    const grpc = createClient(LogService, createGrpcTransport({ baseUrl: f.url }));
    const jobs: Array<[string, string, number]> = [
      ["run-a", "build", 30_000],
      ["run-a", "test", 20_000],
      ["run-b", "build", 25_000],
      ["run-b", "lint", 15_000],
      ["run-c", "deploy", 10_000],
    ];
    // Open run-a/build first so tails can attach while it is written.
    await client.openTask({ task: { runId: "run-a", task: "build", workflow: "nightly" } });
    const tail = async (offset: bigint, stall?: Promise<void>) => {
      const parts: Buffer[] = [];
      let first = true;
      let next = offset;
      for await (const m of grpc.tail({ runId: "run-a", task: "build", offset })) {
        expect(m.offset).toBe(next);
        next = m.nextOffset;
        parts.push(Buffer.from(m.data));
        if (first && stall) await stall;
        first = false;
        if (m.complete) break;
      }
      return Buffer.concat(parts).toString("utf8");
    };
    let release!: () => void;
    const stalled = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tails = [tail(0n), tail(0n)];
    const stalledTail = tail(0n, stalled);

    const results = await Promise.all(jobs.map(([run, task, n]) => pushTask(f.url, run, task, n)));
    for (const [i, [run, task]] of jobs.entries()) expected.set(`${run}/${task}`, results[i] as string);
    const total = jobs.reduce((sum, [, , n]) => sum + n, 0);
    expect(total).toBe(100_000);

    for (const [key, want] of expected) {
      const [run, task] = key.split("/") as [string, string];
      expect(await readAll(client, run, task)).toBe(want);
    }
    // Ingest finished while one subscriber was stalled; the others got everything, in order, once.
    const want = expected.get("run-a/build") as string;
    for (const got of await Promise.all(tails)) expect(got).toBe(want);
    release();
    expect(await stalledTail).toBe(want);

    // From a middle offset: exactly the records from there on.
    const middle = Buffer.byteLength(want.split("\n").slice(0, 12_345).join("\n")) + 1;
    expect(await tail(BigInt(middle))).toBe(Buffer.from(want).subarray(middle).toString("utf8"));
    // An offset inside a record starts at the next record, never mid-record.
    const r = await client.read({ runId: "run-a", task: "build", offset: BigInt(middle + 5), maxBytes: 200 });
    expect(Buffer.from(r.data).toString("utf8")).toBe(`${want.split("\n")[12_346]}\n`);
  });

  test("the run log shows each task's lifecycle", async () => {
    const runLog = await readAll(client, "run-a", "_run");
    const lines = runLog
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { step: string; line: string });
    expect(lines.every((l) => l.step === "_run")).toBe(true);
    const text = lines.map((l) => l.line);
    expect(text[0]).toBe("run run-a started (workspace default, workflow nightly)");
    expect(text).toContain("task build started");
    expect(text).toContain("task test started");
    expect(text.some((l) => /^task build completed: succeeded, exit code 0, after \d+\.\d{3}s$/.test(l))).toBe(true);
  });

  test("a restarted leader still has everything", async () => {
    await f.restart();
    for (const [key, want] of expected) {
      const [run, task] = key.split("/") as [string, string];
      expect(await readAll(client, run, task)).toBe(want);
    }
    const run = await client.getRun({ runId: "run-b" });
    expect(run.tasks.map((t) => [t.name, Number(t.recordCount)])).toEqual([
      ["build", 25_000],
      ["lint", 15_000],
    ]);
  });
});

describe("a worker whose stream breaks", () => {
  test("resumes after its connection is cut, losing and duplicating nothing", async () => {
    const proxy = await startTcpProxy(f.leader.port);
    const retries: unknown[] = [];
    const writer = TaskLogWriter.open({
      leader: proxy.url,
      runId: "cut",
      task: "t",
      settings: { batchMaxLines: 100, batchMaxIntervalMs: 5, backoffInitialMs: 10, backoffMaxMs: 50, streamMaxBytes: 64 * 1024 },
      onRetry: (err) => retries.push(err),
    });
    let expected = "";
    for (let i = 0; i < 20_000; i++) {
      const line = ciLine("t", i);
      expected += expectedRecord(TS0 + i, "stdout", "t", line);
      if (!writer.write("stdout", line, TS0 + i)) await writer.ready();
      if (i % 5000 === 2500) {
        // Let some batches reach the leader, then cut every connection mid-stream.
        await new Promise((resolve) => setImmediate(resolve));
        proxy.cutAll();
      }
    }
    await writer.complete({ result: "succeeded", exitCode: 0 });
    await proxy.close();
    expect(retries.length).toBeGreaterThan(0);
    const client = new LeaderClient(f.url);
    expect(await readAll(client, "cut", "t")).toBe(expected);
    client.close();
  });

  test("a Push stream cut mid-way is a server event of its run", async () => {
    const proxy = await startTcpProxy(f.leader.port);
    const worker = new LeaderClient(proxy.url);
    const reader = new LeaderClient(f.url);
    const call = worker.push();
    call.write({ task: { runId: "broken", task: "t" }, batch: { firstSeq: 1n, lines: [{ text: Buffer.from("before the cut") }] } });
    // Cut only once the leader holds the batch, while the stream is still open.
    await until(async () => ((await reader.read({ runId: "broken", task: "t" }).catch(() => undefined))?.length ?? 0n) > 0n);
    proxy.cutAll();
    await expect(call.end()).rejects.toThrow();
    await until(async () => (await reader.read({ runId: "broken", task: "_server" })).length > 0n);
    const [event] = (await readAll(reader, "broken", "_server"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { stream: string; line: string });
    expect(event?.stream).toBe("stderr");
    expect(event?.line).toMatch(/^Push stream for task t broke before it ended \(.+\); lines up to seq 1 are stored$/);
    worker.close();
    reader.close();
    await proxy.close();
  });

  test("resumes after the leader restarts mid-task", async () => {
    const writer = TaskLogWriter.open({
      leader: f.url,
      runId: "restart",
      task: "t",
      settings: { batchMaxLines: 200, batchMaxIntervalMs: 5, backoffInitialMs: 10, backoffMaxMs: 100 },
    });
    let expected = "";
    let restarted: Promise<void> | undefined;
    for (let i = 0; i < 10_000; i++) {
      const line = ciLine("t", i);
      expected += expectedRecord(TS0 + i, i % 2 ? "stderr" : "stdout", "t", line);
      if (!writer.write(i % 2 ? "stderr" : "stdout", line, TS0 + i)) await writer.ready();
      if (i === 5000) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        restarted = f.restart();
      }
    }
    await restarted;
    await writer.complete({ result: "failed", exitCode: 2 });
    const client = new LeaderClient(f.url);
    expect(await readAll(client, "restart", "t")).toBe(expected);
    const run = await client.getRun({ runId: "restart" });
    expect(run.tasks[0]?.exitCode).toBe(2);
    client.close();
  });
});

describe("a worker whose acknowledgement came too late", () => {
  test("resends its lines and completion after the run completed, and they are acknowledged as duplicates", async () => {
    const client = new LeaderClient(f.url);
    const task = { runId: "late", task: "t" };
    const batch = { firstSeq: 1n, baseTsUnixMs: BigInt(TS0), lines: ["a", "b", "c"].map((l) => ({ text: Buffer.from(l) })) };
    const complete = { result: Result.SUCCEEDED, exitCode: 0 };
    const first = client.push();
    first.write({ task, batch, complete });
    await first.end(); // the worker never saw this answer...
    const before = await readAll(client, "late", "t");
    await client.completeRun({ runId: "late", result: Result.SUCCEEDED });
    // ...so it asks where the log stands and sends the same lines and completion again.
    const opened = await client.openTask({ task });
    expect(opened.durableSeq).toBe(3n);
    const again = client.push();
    again.write({ task, batch, complete });
    expect(await again.end()).toMatchObject({ durableSeq: 3n, completed: true });
    expect(await readAll(client, "late", "t")).toBe(before);

    // New lines for that task, or a new task, are refused: the run is over.
    const fresh = TaskLogWriter.open({ leader: f.url, runId: "late", task: "t" });
    fresh.write("stdout", "too late");
    await expect(fresh.complete({ result: "succeeded", exitCode: 0 })).rejects.toThrow(/already completed/);
    const other = TaskLogWriter.open({ leader: f.url, runId: "late", task: "new" });
    other.write("stdout", "too late");
    await expect(other.complete({ result: "succeeded", exitCode: 0 })).rejects.toThrow(/already completed/);
    client.close();
  });
});

describe("a worker restarted on a task that already has lines", () => {
  test("continues the log after them; nothing it writes is taken for a resend", async () => {
    const first = TaskLogWriter.open({ leader: f.url, runId: "again", task: "t" });
    for (let i = 0; i < 5; i++) first.write("stdout", `attempt 1 line ${i}`, TS0 + i);
    await first.close(); // the worker dies without completing the task
    const second = TaskLogWriter.open({ leader: f.url, runId: "again", task: "t" });
    for (let i = 0; i < 3; i++) second.write("stdout", `attempt 2 line ${i}`, TS0 + 10 + i);
    await second.complete({ result: "succeeded", exitCode: 0 });
    expect(second.durableSeq).toBe(8);
    const client = new LeaderClient(f.url);
    const lines = (await readAll(client, "again", "t"))
      .trim()
      .split("\n")
      .map((l) => (JSON.parse(l) as { line: string }).line);
    expect(lines).toEqual([0, 1, 2, 3, 4].map((i) => `attempt 1 line ${i}`).concat([0, 1, 2].map((i) => `attempt 2 line ${i}`)));
    client.close();
  });
});

describe("a driver writing to the run log", () => {
  test("its lines land in _run between the leader's lifecycle records; flush() makes them durable; completing _run is refused", async () => {
    const driver = TaskLogWriter.open({ leader: f.url, runId: "driven", task: "_run", workflow: "nightly" });
    driver.write("stdout", "dispatching build", TS0);
    await driver.flush();
    await pushTask(f.url, "driven", "build", 3);
    driver.write("stdout", "build done, deploying", TS0 + 1);
    await driver.close();

    const client = new LeaderClient(f.url);
    const lines = (await readAll(client, "driven", "_run"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { step: string; line: string });
    expect(lines.every((l) => l.step === "_run")).toBe(true);
    expect(lines.map((l) => l.line.replace(/after \d+\.\d+s/, "after Ns"))).toEqual([
      "run driven started (workspace default, workflow nightly)",
      "dispatching build",
      "task build started",
      "task build completed: succeeded, exit code 0, after Ns",
      "build done, deploying",
    ]);

    const completing = TaskLogWriter.open({ leader: f.url, runId: "driven", task: "_run" });
    await expect(completing.complete({ result: "succeeded", exitCode: 0 })).rejects.toThrow(/completes with its run/);
    client.close();
  });
});
