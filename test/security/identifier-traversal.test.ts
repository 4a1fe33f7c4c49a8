import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, test } from "vitest";
import { Result } from "../../gen/joblog/v1/log_pb.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import { batchOf, createGrpcLogClient, type GrpcLogClient, messages, testLines } from "../helpers/log-service-client.js";
import { HOSTILE_IDS } from "./fuzz-inputs.js";

/**
 * Every hostile identifier (`..`, `%2e%2e`, absolute paths, NUL, over-long …) in
 * every identifier field, through every entry point that reaches the local
 * archive or the legacy directory: nothing is created or read outside them.
 */

const SECRET = "the secret outside the archive";
let dir: string;
let f: LeaderFixture;
let g: GrpcLogClient;

async function filesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-traversal-"));
  await mkdir(join(dir, "outside"));
  // Where a `../outside/secret` run id would land if it were ever joined to the legacy directory.
  await writeFile(join(dir, "outside", "secret.log"), `${SECRET}\n`);
  await writeFile(join(dir, "secret.log"), `${SECRET}\n`);
  f = await startTestLeader({
    log_storage: {
      flush_interval_ms: 100,
      local_dir: join(dir, "legacy"),
      archive: { type: "local", path: join(dir, "archive") },
    },
  });
  g = createGrpcLogClient(f.url);
});

afterAll(async () => {
  g?.close();
  await f?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The call's failure code (calls with hostile ids must fail); no data may come back. */
async function refused(call: Promise<unknown>): Promise<Code> {
  const result = await call.then(
    (r) => r,
    (e: unknown) => e,
  );
  expect(result, "a hostile identifier was accepted").toBeInstanceOf(ConnectError);
  return (result as ConnectError).code;
}

test("hostile identifiers in every field create and read nothing outside the archive and legacy directories", async () => {
  const ids = [...HOSTILE_IDS.filter((id) => id !== "_run" && id !== "_server"), "../outside/secret", "../secret", `${dir}/outside/secret`];
  const before = await filesUnder(dir);
  const codes = new Set<Code>();
  for (const id of ids) {
    for (const field of ["runId", "task", "workspace", "workflow"] as const) {
      if (id === "" && (field === "workspace" || field === "workflow")) continue; // empty: the default, not hostile
      const task = { runId: "trav-ok", task: "t", workspace: "", workflow: "", [field]: id };
      codes.add(await refused(g.client.openTask({ task })));
      codes.add(
        await refused(
          g.client.push(messages({ task, batch: batchOf(1, Date.now(), testLines("x", 1)), complete: { result: Result.SUCCEEDED } })),
        ),
      );
    }
    codes.add(await refused(g.client.read({ runId: id, task: "t" })));
    codes.add(await refused(g.client.read({ runId: "trav-ok", task: id })));
    codes.add(await refused(g.client.getRun({ runId: id })));
    for (const segment of [encodeURIComponent(id), encodeURIComponent(encodeURIComponent(id))]) {
      const res = await fetch(`${f.url}/api/jobs/${segment}/steps/t/logs`);
      const body = await res.text();
      expect(res.status, `GET …/${segment.slice(0, 40)}/…`).toBeGreaterThanOrEqual(400);
      expect(body).not.toContain(SECRET);
    }
  }
  // Only refusals naming the input or its absence; never a read of the planted file.
  expect([...codes].every((c) => c === Code.InvalidArgument || c === Code.NotFound)).toBe(true);
  const after = await filesUnder(dir);
  const created = after.filter(
    (file) => !before.includes(file) && !file.startsWith(join(dir, "archive")) && !file.startsWith(join(dir, "legacy")),
  );
  expect(created).toEqual([]);
  expect(await filesUnder(join(dir, "archive"))).toEqual([]);
});
