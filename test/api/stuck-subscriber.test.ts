import { afterAll, beforeAll, test } from "vitest";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import { neverReadingTail, tailSubscribers } from "../helpers/never-reading-tail.js";
import { pushTask, until } from "../helpers/task-logs.js";

let f: LeaderFixture;

beforeAll(async () => {
  f = await startTestLeader({ limits: { max_tail_subscribers: 1 } });
  // Far more than the flow-control windows: the leader's writes to a stuck subscriber block.
  await pushTask(f.url, "stuck-run", "build", 40_000);
});

afterAll(async () => {
  await f?.dispose();
});

test("a Tail subscriber that stops reading and then disconnects is released, and its place is free again", async () => {
  const stuck = neverReadingTail(f.url, "stuck-run", "build");
  await until(async () => (await tailSubscribers(f.url)) === 1, 10_000);
  // Its response is blocked on flow control; the client goes away without a word.
  await new Promise((resolve) => setTimeout(resolve, 200));
  stuck.destroy();
  await until(async () => (await tailSubscribers(f.url)) === 0, 10_000);

  // Under a limit of one subscriber, a new one gets in.
  const next = neverReadingTail(f.url, "stuck-run", "build");
  try {
    await until(async () => (await tailSubscribers(f.url)) === 1, 10_000);
  } finally {
    next.destroy();
  }
});
