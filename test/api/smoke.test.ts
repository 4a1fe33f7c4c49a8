import { afterAll, beforeAll, expect, test } from "vitest";
import { LeaderClient } from "../../src/client/leader-client.js";
import { TaskLogWriter } from "../../src/worker/task-log-writer.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";

let f: LeaderFixture;
beforeAll(async () => {
  f = await startTestLeader();
});
afterAll(async () => {
  await f.dispose();
});

test("a worker pushes lines and a reader reads them back", async () => {
  const w = TaskLogWriter.open({ leader: f.url, runId: "r1", task: "build" });
  for (let i = 0; i < 10; i++) w.write(i % 2 ? "stderr" : "stdout", `line ${i}`);
  await w.complete({ result: "succeeded", exitCode: 0 });
  const c = new LeaderClient(f.url);
  const r = await c.read({ runId: "r1", task: "build" });
  console.log(Buffer.from(r.data).toString());
  const runLog = await c.read({ runId: "r1", task: "_run" });
  console.log(Buffer.from(runLog.data).toString());
  expect(r.complete).toBe(true);
  c.close();
});
