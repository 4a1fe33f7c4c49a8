import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { Result } from "../../gen/joblog/v1/log_pb.js";
import { haveChromium, launchChromium, openPage } from "../helpers/browser.js";
import { filesUnder } from "../helpers/files-under.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import {
  batchOf,
  createGrpcLogClient,
  createPushStream,
  expectedJsonl,
  type GrpcLogClient,
  messages,
  parseRecords,
  testLines,
} from "../helpers/log-service-client.js";
import { until } from "../helpers/task-logs.js";
import { waitForLine, waitForLineCount } from "../helpers/ui-page.js";

/** The per-task size cap: the newest bytes stay, offsets stay, a read of the dropped range gets one marker record. */

const BASE_TS = Date.UTC(2025, 1, 12, 10, 56, 45, 123);
const CAP = 8192;
const LINES = testLines("build", 1000);
const EXPECTED = Buffer.from(expectedJsonl("build", BASE_TS, LINES));

/** Where the retained log begins once every trim is done: chunks are the 20-line batches, the first one starting within the cap's reach. */
const FINAL_RETAINED = (() => {
  let offset = 0;
  for (let i = 0; i < LINES.length; i += 20) {
    if (EXPECTED.length - offset <= CAP) return offset;
    offset += Buffer.byteLength(expectedJsonl("build", BASE_TS, LINES.slice(i, i + 20)));
  }
  return offset;
})();

/** Waits until the trims after the last commit are done: a read from 0 says the log continues at FINAL_RETAINED. */
async function trimmed(client: GrpcLogClient["client"], runId: string): Promise<void> {
  await until(async () =>
    Buffer.from((await client.read({ runId, task: "build" })).data).includes(`the log continues at offset ${FINAL_RETAINED}"`),
  );
}

let dir: string;
let f: LeaderFixture | undefined;
let g: GrpcLogClient | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-size-cap-"));
});

afterEach(async () => {
  g?.close();
  g = undefined;
  await f?.dispose();
  f = undefined;
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Pushes LINES to run/build in batches of 20 (each commit is its own chunk). */
async function pushAll(client: GrpcLogClient["client"], runId: string): Promise<void> {
  const stream = createPushStream();
  const done = client.push(stream);
  const task = { runId, task: "build" };
  for (let i = 0; i < LINES.length; i += 20) stream.send({ task, batch: batchOf(i + 1, BASE_TS, LINES.slice(i, i + 20)) });
  stream.end();
  await done;
}

async function completeTask(client: GrpcLogClient["client"], runId: string): Promise<void> {
  await client.push(messages({ task: { runId, task: "build" }, complete: { result: Result.FAILED, exitCode: 2 } }));
}

/** Reads from `offset` following next_offset to the end; checks offset + data = next_offset on every response. */
async function readFrom(client: GrpcLogClient["client"], runId: string, offset: bigint) {
  const responses = [];
  for (let i = 0; i < 1000; i++) {
    const r = await client.read({ runId, task: "build", offset, maxBytes: 4096 });
    expect(r.nextOffset).toBe(r.offset + BigInt(r.data.length));
    responses.push(r);
    offset = r.nextOffset;
    if (r.nextOffset >= r.length) return responses;
  }
  throw new Error("read did not reach the end");
}

/** Asserts what a read from 0 returns: the marker, ending at the retained start, then the log's own bytes from there. */
function expectMarkerThenTail(data: Buffer, offset: bigint): number {
  const text = data.toString("utf8");
  const [marker] = parseRecords(text);
  const retainedFrom = Number(/continues at offset (\d+)/.exec(marker?.line ?? "")?.[1]);
  expect(marker).toMatchObject({ stream: "stderr", step: "build" });
  expect(marker?.line).toBe(
    `[joblog] ${retainedFrom} bytes dropped (per-task size cap, retention.max_task_bytes: the newest output is kept); the log continues at offset ${retainedFrom}`,
  );
  const markerBytes = Buffer.byteLength(`${text.split("\n")[0]}\n`);
  expect(Number(offset)).toBe(retainedFrom - markerBytes);
  // Whole chunks go: what is kept is at most the cap (plus nothing), and it starts at a record boundary of the log.
  expect(EXPECTED.length - retainedFrom).toBeLessThanOrEqual(CAP);
  expect(EXPECTED.length - retainedFrom).toBeGreaterThan(CAP / 2);
  expect(EXPECTED[retainedFrom - 1]).toBe(0x0a);
  expect(data.subarray(markerBytes)).toEqual(EXPECTED.subarray(retainedFrom, retainedFrom + data.length - markerBytes));
  return retainedFrom;
}

describe("per-task size cap", () => {
  test("the oldest chunks are dropped; Read and Tail of the dropped range get one marker, then the retained log at its own offsets", async () => {
    f = await startTestLeader({ retention: { max_task_bytes: CAP }, storage: { chunk_bytes: 4096 } });
    g = createGrpcLogClient(f.url);
    await pushAll(g.client, "capped");
    const client = g.client;
    await trimmed(client, "capped");

    const responses = await readFrom(client, "capped", 0n);
    const first = responses[0];
    if (!first) throw new Error("no response");
    expect(first.length).toBe(BigInt(EXPECTED.length));
    const retainedFrom = expectMarkerThenTail(Buffer.from(first.data), first.offset);
    expect(retainedFrom).toBe(FINAL_RETAINED);
    const rest = Buffer.concat(responses.map((r) => Buffer.from(r.data)));
    expect(rest.toString().match(/bytes dropped/g)).toHaveLength(1);
    expect(rest.subarray(rest.indexOf(0x0a) + 1)).toEqual(EXPECTED.subarray(retainedFrom));
    // Line numbers count from the marker: record_count is what a read from 0 shows, and LocateLine agrees.
    const shown = parseRecords(rest.toString());
    const view = await client.getRun({ runId: "capped" });
    expect(Number(view.tasks[0]?.recordCount)).toBe(shown.length);
    const located = await client.locateLine({ runId: "capped", task: "build", lineNumber: 2n });
    expect(Number(located.offset)).toBe(retainedFrom);
    // The UI shows the same: as many lines, the marker as line 1, the last line last.
    if (haveChromium) {
      const browser = await launchChromium();
      try {
        const { page } = await openPage(browser, `${f.url}/runs/capped/tasks/build#L1`);
        await waitForLineCount(page, shown.length);
        expect(await waitForLine(page, 1)).toContain(`${retainedFrom} bytes dropped`);
        await page.goto(`${f.url}/runs/capped/tasks/build#L${shown.length}`);
        expect(await waitForLine(page, shown.length)).toBe(shown.at(-1)?.line);
      } finally {
        await browser.close();
      }
    }

    // Offsets are stable: a read at a retained offset is the same bytes as before any drop.
    const mid = EXPECTED.indexOf(0x0a, retainedFrom + 1000) + 1;
    const r = await client.read({ runId: "capped", task: "build", offset: BigInt(mid), maxBytes: 300 });
    expect(Number(r.offset)).toBe(mid);
    expect(Buffer.from(r.data)).toEqual(EXPECTED.subarray(mid, mid + r.data.length));

    // A Tail from 0 of the completed task sees one marker, then everything retained, in order.
    await completeTask(client, "capped");
    const parts: Buffer[] = [];
    let expectedOffset: bigint | undefined;
    for await (const m of client.tail({ runId: "capped", task: "build", offset: 0n })) {
      if (expectedOffset !== undefined) expect(m.offset).toBe(expectedOffset);
      expect(m.nextOffset).toBe(m.offset + BigInt(m.data.length));
      expectedOffset = m.nextOffset;
      parts.push(Buffer.from(m.data));
      if (m.complete) break;
    }
    const tailed = Buffer.concat(parts);
    expect(tailed.toString().match(/bytes dropped/g)).toHaveLength(1);
    expect(tailed.subarray(tailed.indexOf(0x0a) + 1)).toEqual(EXPECTED.subarray(retainedFrom));
  });

  test("with an archive: the run's object holds the retained log, and reads from the archive give the same marker", async () => {
    f = await startTestLeader({
      retention: { max_task_bytes: CAP },
      storage: { chunk_bytes: 4096 },
      log_storage: { flush_interval_ms: 100, archive: { type: "local", path: join(dir, "archive") } },
    });
    g = createGrpcLogClient(f.url);
    const client = g.client;
    await pushAll(client, "capped-archived");
    await trimmed(client, "capped-archived");
    await completeTask(client, "capped-archived");
    await client.completeRun({ runId: "capped-archived", result: Result.FAILED });
    const before = await readFrom(client, "capped-archived", 0n);
    // Wait for the run's object (segments cleaned up): the task's chunks are then dropped and reads go to the archive.
    const archiveDir = join(dir, "archive");
    const objects = () => filesUnder(archiveDir);
    await until(async () => {
      const files = await objects();
      return files.some((p) => p.endsWith("_capped-archived.jsonl.gz")) && !files.some((p) => p.includes(".parts"));
    }, 20_000);
    const object = (await objects()).find((p) => p.endsWith(".jsonl.gz")) as string;
    const archivedText = gunzipSync(await readFile(join(archiveDir, object))).toString();
    expect(archivedText).toContain(`"line":"build line 1000 `);
    expect(archivedText).not.toContain(`"line":"build line 1 `);
    await f.restart();
    g.close();
    g = createGrpcLogClient(f.url);
    const after = await readFrom(g.client, "capped-archived", 0n);
    const text = (rs: typeof after) => Buffer.concat(rs.map((r) => Buffer.from(r.data))).toString();
    expect(text(after)).toBe(text(before));
    const first = after[0];
    if (!first) throw new Error("no response");
    expectMarkerThenTail(Buffer.from(first.data), first.offset);
    expect(f.logs.filter((l) => l.includes("failed"))).toEqual([]);
  });
});
