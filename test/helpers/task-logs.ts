import type { LeaderClient } from "../../src/client/leader-client.js";
import { TaskLogWriter } from "../../src/worker/task-log-writer.js";
import { ciLine, expectedRecord } from "./expected-jsonl.js";

/** What tests share to write task logs through the real worker client and read them back. */

export const TS0 = Date.UTC(2025, 1, 12, 10, 56, 45, 123);

/** Writes `count` lines to a task with known timestamps; returns the expected JSONL. */
export async function pushTask(
  leader: string,
  run: string,
  task: string,
  count: number,
  extra: Partial<Parameters<typeof TaskLogWriter.open>[0]> = {},
) {
  const writer = TaskLogWriter.open({ leader, runId: run, task, workflow: "nightly", ...extra });
  let expected = "";
  for (let i = 0; i < count; i++) {
    const stream = i % 10 === 9 ? "stderr" : "stdout";
    const line = ciLine(task, i);
    const ts = TS0 + i;
    expected += expectedRecord(ts, stream, task, line);
    if (!writer.write(stream, line, ts)) await writer.ready();
  }
  await writer.complete({ result: "succeeded", exitCode: 0 });
  return expected;
}

/** Polls `check` until it holds; bounded, for states that announce themselves with no event. */
export async function until(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export async function readAll(client: LeaderClient, run: string, task: string): Promise<string> {
  const parts: Buffer[] = [];
  let offset = 0n;
  for (let guard = 0; guard < 100_000; guard++) {
    const r = await client.read({ runId: run, task, offset });
    if (r.data.length === 0) break;
    parts.push(Buffer.from(r.data));
    offset = r.nextOffset;
  }
  return Buffer.concat(parts).toString("utf8");
}
