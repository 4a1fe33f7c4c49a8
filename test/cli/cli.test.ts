import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { TaskState } from "../../gen/joblog/v1/log_pb.js";
import { LeaderClient } from "../../src/client/leader-client.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CHILD_TIMEOUT_MS = 20_000;

let f: LeaderFixture;
let client: LeaderClient;
let dir: string;
/** Environment of every CLI child: no JOBLOG_* from the developer's shell, and an empty config file. */
let childEnv: NodeJS.ProcessEnv;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  f = await startTestLeader();
  client = new LeaderClient(f.url);
  dir = await mkdtemp(join(tmpdir(), "joblog-cli-test-"));
  const config = join(dir, "joblog.yaml");
  await writeFile(config, "");
  childEnv = { PATH: process.env.PATH, HOME: dir, JOBLOG_LEADER: f.url, JOBLOG_CONFIG: config };
});

afterAll(async () => {
  for (const child of children) child.kill("SIGKILL");
  client?.close();
  await f?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface CliProcess {
  child: ChildProcess;
  /** Resolves when the process has exited; rejects (after killing it) on timeout. */
  done: Promise<CliResult>;
  /** Resolves when stdout has printed `text`. */
  printed(text: string): Promise<void>;
  /** What stdout has printed so far. */
  output(): string;
}

/** Starts `joblog ARGS...` as a child process against the test leader. */
function startCli(args: string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], {
    cwd: ROOT,
    env: { ...childEnv, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let stdout = "";
  let stderr = "";
  const waiters: Array<{ text: string; resolve(): void }> = [];
  child.stdout?.setEncoding("utf8").on("data", (s: string) => {
    stdout += s;
    for (const w of waiters.filter((w) => stdout.includes(w.text))) w.resolve();
  });
  child.stderr?.setEncoding("utf8").on("data", (s: string) => {
    stderr += s;
  });
  const done = new Promise<CliResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`joblog ${args.join(" ")} did not exit within ${CHILD_TIMEOUT_MS} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, CHILD_TIMEOUT_MS);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
  const printed = (text: string) =>
    stdout.includes(text)
      ? Promise.resolve()
      : Promise.race([
          new Promise<void>((resolve) => waiters.push({ text, resolve })),
          done.then((r) => {
            throw new Error(`joblog ${args.join(" ")} exited without printing ${JSON.stringify(text)}; stdout: ${r.stdout}`);
          }),
        ]);
  return { child, done, printed, output: () => stdout };
}

/** Runs `joblog ARGS...` to completion. */
const cli = (args: string[], env?: NodeJS.ProcessEnv) => startCli(args, env).done;

/** The canonical records of a task log, read through the CLI. */
async function readRecords(run: string, task: string): Promise<Array<{ ts: string; stream: string; step: string; line: string }>> {
  const r = await cli(["read", run, task, "--format", "jsonl"]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return r.stdout
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as { ts: string; stream: string; step: string; line: string });
}

/** Checks a failure was reported as one `joblog:` line without a stack trace. */
function expectOneLineError(r: CliResult): string {
  expect(r.code).not.toBe(0);
  const lines = r.stderr.trimEnd().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^joblog: /);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  return lines[0] ?? "";
}

describe("joblog run", () => {
  test("exits with the command's code and stores stdout and stderr lines of the task", async () => {
    const r = await cli(["run", "--run", "R1", "--task", "T", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    expect(r.code).toBe(3);
    // The command's output is also copied to the terminal.
    expect(r.stdout).toBe("out\n");
    expect(r.stderr).toBe("err\n");

    const records = await readRecords("R1", "T");
    expect(records.map(({ stream, step, line }) => ({ stream, step, line }))).toEqual([
      { stream: "stdout", step: "T", line: "out" },
      { stream: "stderr", step: "T", line: "err" },
    ]);
    for (const record of records) expect(record.ts).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    const text = await cli(["read", "R1", "T", "--format", "text"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toBe("out\nerr\n");
  });

  test("a command killed by a signal exits 128 + the signal and completes the task failed", async () => {
    const r = await cli(["run", "--run", "R2", "--task", "killed", "--", "sh", "-c", "echo before; kill -TERM $$"]);
    expect(r.code).toBe(143);
    const show = await cli(["show", "R2"]);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^killed\s+failed\s+SIGTERM\s/m);
    const task = (await client.getRun({ runId: "R2" })).tasks.find((t) => t.name === "killed");
    expect(task?.signal).toBe("SIGTERM");
  });

  test("a command that cannot be started exits 127 and completes the task failed", async () => {
    const r = await cli(["run", "--run", "R3", "--task", "missing", "--", "/nonexistent/joblog-test-command"]);
    expect(r.code).toBe(127);
    expect(r.stderr).toContain("/nonexistent/joblog-test-command");
    const show = await cli(["show", "R3"]);
    expect(show.stdout).toMatch(/^missing\s+failed\s+127\s/m);
    const records = await readRecords("R3", "missing");
    expect(records.map((rec) => rec.stream)).toEqual(["stderr"]);
    expect(records[0]?.line).toContain("cannot run /nonexistent/joblog-test-command");
  });

  test("keeps a last line without a newline, and stores CRLF lines without the \\r", async () => {
    const r = await cli(["run", "--run", "R4", "--task", "T", "--", "printf", "crlf\\r\\nlone\\rcr\\n\\nno newline"]);
    expect(r.code).toBe(0);
    expect((await readRecords("R4", "T")).map((rec) => rec.line)).toEqual(["crlf", "lone\rcr", "", "no newline"]);
  });

  test("an over-long line is stored cut once, with a marker naming the bytes cut", async () => {
    const length = 100_000;
    const r = await cli([
      "run",
      "--run",
      "R5",
      "--task",
      "T",
      "--quiet",
      "--",
      "sh",
      "-c",
      `head -c ${length} /dev/zero | tr '\\0' x; echo; echo next`,
    ]);
    expect(r.code).toBe(0);
    const [long, next] = (await readRecords("R5", "T")).map((rec) => rec.line);
    const m = /^(x*) \[joblog: line truncated, (\d+) bytes cut\]$/.exec(long ?? "");
    if (!m) throw new Error(`no single marker at the end of ${JSON.stringify(long?.slice(-120))}`);
    expect((m[1] ?? "").length + Number(m[2])).toBe(length);
    expect(next).toBe("next");
  });

  test("the run log shows the lifecycle of the run and its tasks", async () => {
    expect((await cli(["run", "--run", "R6", "--task", "build", "--", "true"])).code).toBe(0);
    expect((await cli(["run", "--run", "R6", "--task", "test", "--", "false"])).code).toBe(1);
    const r = await cli(["tail", "R6", "_run"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^run R6 started/);
    expect(lines.slice(1)).toEqual([
      "task build started",
      expect.stringMatching(/^task build completed: succeeded, exit code 0\b/),
      "task test started",
      expect.stringMatching(/^task test completed: failed, exit code 1\b/),
    ]);
  });
});

describe("joblog tail --follow", () => {
  test("prints every line of a task that is still being written and exits when the task completes", async () => {
    // The command prints two lines, then waits (bounded) for the test to let it print the rest,
    // so the tail is certainly attached while the task is still running.
    const go = join(dir, "tail-follow-go");
    const script = `echo 1; echo 2; i=0; while [ ! -e "$GO" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; echo 3; echo 4; echo 5`;
    const run = startCli(["run", "--run", "R7", "--task", "slow", "--", "sh", "-c", script], { GO: go });
    await run.printed("2\n");
    // Wait (bounded) until the leader holds both lines; there is no event to await for that.
    for (let attempt = 0; ; attempt++) {
      const task = await client.getRun({ runId: "R7" }).then(
        (r) => r.tasks.find((t) => t.name === "slow"),
        () => undefined,
      );
      if (task && task.recordCount >= 2n) break;
      if (attempt >= 200) throw new Error("the first lines of task slow never reached the leader");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    const tail = startCli(["tail", "--follow", "R7", "slow"]);
    await tail.printed("1\n2\n");
    const before = (await client.getRun({ runId: "R7" })).tasks.find((t) => t.name === "slow");
    expect(before?.state).toBe(TaskState.RUNNING);
    await writeFile(go, "");

    const followed = await tail.done;
    expect(followed.stderr).toBe("");
    expect(followed.code).toBe(0);
    expect(followed.stdout).toBe("1\n2\n3\n4\n5\n");
    expect((await run.done).code).toBe(0);
    const after = (await client.getRun({ runId: "R7" })).tasks.find((t) => t.name === "slow");
    expect(after?.state).toBe(TaskState.COMPLETED);
  });
});

describe("joblog runs and complete", () => {
  test("lists a run, and lists it as completed after complete", async () => {
    expect((await cli(["run", "--run", "R8", "--task", "T", "--", "true"])).code).toBe(0);

    const all = await cli(["runs"]);
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(/^RUN\s+WORKSPACE\s+WORKFLOW\s+STATE/);
    expect(all.stdout).toMatch(/^R8\s+default\s+default\s+running\s/m);

    const done = await cli(["complete", "R8", "--result", "succeeded"]);
    expect(done.code).toBe(0);
    expect(done.stdout).toBe("run R8 completed: succeeded\n");

    const completed = await cli(["runs", "--state", "completed"]);
    expect(completed.stdout).toMatch(/^R8\s+default\s+default\s+succeeded\s/m);
    const running = await cli(["runs", "--state", "running", "--json"]);
    expect(running.stdout).not.toContain('"run_id":"R8"');
    const json = await cli(["runs", "--state", "completed", "--json"]);
    const rows = json.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as { run_id: string; state: string; tasks: number });
    expect(rows.find((row) => row.run_id === "R8")).toMatchObject({ state: "succeeded", tasks: 1 });
  });
});

describe("errors", () => {
  test("an unknown run is one NOT_FOUND line", async () => {
    const line = expectOneLineError(await cli(["read", "no-such-run", "T"]));
    expect(line).toContain("NOT_FOUND");
    expect(line).toContain("no-such-run");
  });

  test("a bad run id is one INVALID_ARGUMENT line", async () => {
    const line = expectOneLineError(await cli(["read", "../x", "T"]));
    expect(line).toContain("INVALID_ARGUMENT");
    expect(line).toContain("../x");
  });

  test("a bad run id given to run is refused before the command starts", async () => {
    const r = await cli(["run", "--run", "../x", "--task", "T", "--", "sh", "-c", "echo started"]);
    expect(expectOneLineError(r)).toContain("../x");
    expect(r.stdout).toBe("");
  });

  test("an unreachable leader is one line naming the leader that was asked", async () => {
    const line = expectOneLineError(await cli(["read", "R1", "T", "--leader", "http://127.0.0.1:1"]));
    expect(line).toContain("cannot reach the leader at http://127.0.0.1:1");
    const viaEnv = expectOneLineError(await cli(["read", "R1", "T"], { JOBLOG_LEADER: "http://127.0.0.1:1" }));
    expect(viaEnv).toContain("cannot reach the leader at http://127.0.0.1:1");
  });
});

describe("--help", () => {
  test.each(["leader", "run", "read", "tail", "runs", "show", "complete"])("joblog %s --help exits 0 with its usage", async (command) => {
    const r = await cli([command, "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: joblog ${command}`);
  });
});

describe("joblog leader", () => {
  test("prints its address and data directory, serves, and stops cleanly on SIGTERM", async () => {
    const data = join(dir, "leader-data");
    const leader = startCli(["leader", "--data", data, "--listen", "127.0.0.1:0"]);
    await leader.printed("data directory:");
    const address = /listening on (127\.0\.0\.1:\d+)/.exec(leader.output())?.[1];
    expect(address).toBeDefined();
    expect(leader.output()).toContain(`data directory: ${data}`);

    const run = await cli(["run", "--quiet", "--leader", `http://${address}`, "--run", "L1", "--task", "t", "--", "echo", "hi"]);
    expect(run.code).toBe(0);

    // A second leader on the same data directory is refused with a reason, not a stack trace.
    const second = await cli(["leader", "--data", data, "--listen", "127.0.0.1:0"]);
    expect(expectOneLineError(second)).toContain("another process (a running leader?) is using this data directory");

    leader.child.kill("SIGTERM");
    const stopped = await leader.done;
    expect(stopped.code).toBe(0);
    expect(stopped.stdout).toContain("stopped");

    // The log written before the stop is there for the next leader.
    const again = startCli(["leader", "--data", data, "--listen", "127.0.0.1:0"]);
    await again.printed("data directory:");
    const next = /listening on (127\.0\.0\.1:\d+)/.exec(again.output())?.[1];
    const read = await cli(["read", "--leader", `http://${next}`, "L1", "t"]);
    expect(read.stdout).toBe("hi\n");
    again.child.kill("SIGTERM");
    expect((await again.done).code).toBe(0);
  });

  test("a configuration error names the key and stops the leader", async () => {
    const config = join(dir, "bad.yaml");
    await writeFile(config, "server:\n  listn: 127.0.0.1:1\nlimits:\n  max_line_bytes: lots\n");
    const r = await cli(["leader", "--config", config]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("server.listn: unknown key");
    expect(r.stderr).toContain("limits.max_line_bytes:");
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });
});
