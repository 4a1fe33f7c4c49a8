import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Result } from "../../gen/joblog/v1/log_pb.js";
import { maskForms } from "../../src/lines/secret-masker.js";
import { LineSplitter } from "../../src/worker/line-splitter.js";
import { TaskLogRefusedError, TaskLogWriter } from "../../src/worker/task-log-writer.js";
import { haveChromium, launchChromium, openPage } from "../helpers/browser.js";
import { filesUnder } from "../helpers/files-under.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import {
  batchOf,
  createGrpcLogClient,
  createPushStream,
  expectConnectError,
  type GrpcLogClient,
  messages,
  readAll,
  tailToEnd,
} from "../helpers/log-service-client.js";
import { until } from "../helpers/task-logs.js";
import { waitForLineCount } from "../helpers/ui-page.js";

/**
 * Secrets registered by a worker never reach the store, the archive, Read, Tail,
 * the UI or the leader's log — in any of the forms a build prints them.
 */

const SECRET = "hunter2-Sup3r/S3cret+Key";
const RUN = "masked-run";
const BASE_TS = Date.UTC(2025, 1, 12, 10, 56, 45, 123);

/** How a build prints a secret: as is, URL-encoded, base64, and base64 inside a longer value at each alignment. */
const printed = [
  SECRET,
  encodeURIComponent(SECRET),
  Buffer.from(SECRET).toString("base64"),
  ...["u:", "us:", "usr:"].map((user) => Buffer.from(`${user}${SECRET}@example`).toString("base64")),
];
/** What must not be found anywhere: the printed forms' secret-only parts (independent of the masker) and every form the masker knows. */
const needles = [SECRET, encodeURIComponent(SECRET), Buffer.from(SECRET).toString("base64").slice(0, 30), ...maskForms(SECRET)];

function occurrences(text: string): string[] {
  return needles.filter((needle) => text.includes(needle));
}

let dir: string;
let f: LeaderFixture;
let g: GrpcLogClient;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-masking-"));
  f = await startTestLeader({
    storage: { chunk_compression: "none" },
    log_storage: { flush_interval_ms: 100, archive: { type: "local", path: join(dir, "archive") } },
  });
  g = createGrpcLogClient(f.url);
});

afterAll(async () => {
  g?.close();
  await f?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("secret masking", () => {
  test("worker and leader mask every form, across pipe reads and batches; nothing of the secret is stored, archived, read, tailed or logged", async () => {
    // The worker: lines through the splitter as a command's pipe delivers them, the secret split across two reads.
    const writer = TaskLogWriter.open({
      leader: f.url,
      runId: RUN,
      task: "deploy",
      masks: [SECRET],
      settings: { batchMaxLines: 2, batchMaxIntervalMs: 5 },
    });
    const splitter = new LineSplitter(64 * 1024, (line) => writer.write("stdout", line));
    const half = 9;
    splitter.push(Buffer.from(`login with ${SECRET.slice(0, half)}`));
    await writer.flush(); // the first half alone reaches nothing: the line is not complete
    splitter.push(Buffer.from(`${SECRET.slice(half)} done\n`));
    for (const form of printed) splitter.push(Buffer.from(`value=${form}\n`));
    splitter.end();
    await writer.complete({ result: "succeeded", exitCode: 0 });

    // A client that registers masks and relies on the leader: masks in the first message, lines in later ones.
    const task = { runId: RUN, task: "leader-side" };
    const lines = printed.map((form, i) => ({ text: `echo ${form} #${i}`, stream: "stdout" as const, tsOffsetMs: i }));
    await g.client.push(
      messages(
        { task, masks: [SECRET] },
        { batch: batchOf(1, BASE_TS, lines.slice(0, 3)) },
        { batch: batchOf(4, BASE_TS, lines.slice(3)), complete: { result: Result.SUCCEEDED, exitCode: 0 } },
      ),
    );
    await g.client.completeRun({ runId: RUN, result: Result.SUCCEEDED });

    const deploy = (await readAll(g.client, RUN, "deploy")).text;
    expect(deploy).toContain('"line":"login with *** done"');
    expect(deploy.split("***").length - 1).toBe(1 + printed.length);
    const leaderSide = (await readAll(g.client, RUN, "leader-side")).text;
    expect(leaderSide.split("***").length - 1).toBe(printed.length);
    for (const name of ["deploy", "leader-side", "_run", "_server"]) {
      expect(occurrences((await readAll(g.client, RUN, name)).text), `Read of ${name}`).toEqual([]);
      expect(occurrences(await tailToEnd(g.client.tail({ runId: RUN, task: name }))), `Tail of ${name}`).toEqual([]);
    }

    // The archive: wait for the run's object, then look into every object.
    const archiveDir = join(dir, "archive");
    const objects = async () => (await filesUnder(archiveDir)).map((p) => join(archiveDir, p));
    await until(async () => {
      const files = await objects();
      return files.some((p) => p.endsWith(`_${RUN}.jsonl.gz`)) && !files.some((p) => p.includes(".parts/"));
    }, 20_000);
    for (const file of await objects()) {
      const text = file.endsWith(".gz") ? execFileSync("zcat", [file]).toString("utf8") : await readFile(file, "utf8");
      expect(occurrences(text), file).toEqual([]);
      if (file.endsWith(".gz")) expect(text).toContain("login with *** done");
    }
    // The data directory (chunks uncompressed: this catches a plaintext slip, such as a mask in a state record) and the leader's log.
    for (const file of await filesUnder(f.dataDir))
      expect(occurrences((await readFile(join(f.dataDir, file))).toString("latin1")), file).toEqual([]);
    expect(occurrences(f.logs.join("\n"))).toEqual([]);
  });

  test.skipIf(!haveChromium)("the UI shows *** where the secret was", async () => {
    let browser: Browser | undefined;
    try {
      browser = await launchChromium();
      const { page } = await openPage(browser, `${f.url}/runs/${RUN}/tasks/deploy`);
      await waitForLineCount(page, 1 + printed.length);
      const shown = (await page.locator(".main-log").textContent()) ?? "";
      expect(shown).toContain("login with *** done");
      expect(occurrences(shown)).toEqual([]);
      expect(occurrences(await page.content())).toEqual([]);
    } finally {
      await browser?.close();
    }
  });

  test("a mask under 4 bytes is refused, naming the entry and never the value, and the stream stores nothing", async () => {
    const err = await expectConnectError(
      g.client.push(
        messages(
          { task: { runId: "mask-refused", task: "t" }, masks: ["long-secret", "abc"] },
          { batch: batchOf(1, BASE_TS, [{ text: "abc", stream: "stdout", tsOffsetMs: 0 }]) },
        ),
      ),
      Code.InvalidArgument,
      "masks[1]",
      "at least 4 bytes",
    );
    expect(err.rawMessage).not.toContain("abc");
    expect(err.rawMessage).not.toContain("long-secret");
    expect((await readAll(g.client, "mask-refused", "t")).length).toBe(0);
    await expectConnectError(
      g.client.push(messages({ task: { runId: "mask-refused", task: "t" }, masks: ["x".repeat(5000)] })),
      Code.ResourceExhausted,
      "masks[0]",
      "4096",
    );
    expect(() => TaskLogWriter.open({ leader: f.url, runId: "mask-refused", task: "w", masks: ["ab"] })).toThrow(TaskLogRefusedError);
  });

  test("masks hold for the stream they came on, from the message that carries them", async () => {
    const stream = createPushStream();
    const done = g.client.push(stream);
    const task = { runId: "mask-stream", task: "t" };
    stream.send({ task, batch: batchOf(1, BASE_TS, [{ text: `before ${SECRET}`, stream: "stdout", tsOffsetMs: 0 }]) });
    stream.send({ masks: [SECRET], batch: batchOf(2, BASE_TS, [{ text: `after ${SECRET}`, stream: "stdout", tsOffsetMs: 0 }]) });
    stream.end();
    await done;
    const text = (await readAll(g.client, "mask-stream", "t")).text;
    expect(text).toContain(`before ${SECRET}`);
    expect(text).toContain("after ***");
  });
});
