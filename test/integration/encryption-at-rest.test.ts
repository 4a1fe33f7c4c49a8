import { execFile } from "node:child_process";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterEach, describe, expect, test } from "vitest";
import { LeaderClient } from "../../src/client/leader-client.js";
import { parseKeyring } from "../../src/keys/master-key-file.js";
import { KvStore } from "../../src/store/kv-store.js";
import { chunkOffset, chunkRange } from "../../src/store/log-keys.js";
import { TaskLogWriter } from "../../src/worker/task-log-writer.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import { pushTask, readAll } from "../helpers/task-logs.js";

const MARKER = "pa55w0rd-MARKER-4c7e19b2-do-not-store";

/** Every regular file under `dir`, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

async function filesContaining(dir: string, needle: string): Promise<string[]> {
  const found: string[] = [];
  for (const file of await filesUnder(dir)) {
    if ((await readFile(file)).includes(needle)) found.push(file);
  }
  return found;
}

async function readError(client: LeaderClient, run: string, task: string, offset: number) {
  try {
    await client.read({ runId: run, task, offset: BigInt(offset) });
  } catch (err) {
    return err as { code: number; details: string };
  }
  throw new Error(`read at ${offset} succeeded`);
}

let f: LeaderFixture | undefined;
let client: LeaderClient | undefined;
afterEach(async () => {
  client?.close();
  client = undefined;
  await f?.dispose();
  f = undefined;
});

describe.each(["brotli", "none"] as const)("with chunk compression %s", (compression) => {
  test("no file under the data directory holds a logged secret, and the log reads back", async () => {
    f = await startTestLeader({ storage: { chunk_compression: compression } });
    const writer = TaskLogWriter.open({ leader: f.url, runId: "secret-run", task: "deploy" });
    for (let i = 0; i < 3000; i++) writer.write(i % 2 ? "stderr" : "stdout", `step ${i}: export TOKEN=${MARKER}`);
    await writer.complete({ result: "succeeded", exitCode: 0 });
    client = new LeaderClient(f.url);
    const text = await readAll(client, "secret-run", "deploy");
    expect(text.split(MARKER).length - 1).toBe(3000);
    await f.leader.stop();

    // The scan itself finds a marker where there is one.
    await writeFile(join(f.dataDir, "control.txt"), `x${MARKER}x`);
    expect(await filesContaining(f.dataDir, MARKER)).toEqual([join(f.dataDir, "control.txt")]);
    const files = await filesUnder(f.dataDir);
    expect(files.some((p) => p.endsWith(".log") || /\/\d+\.sst$/.test(p))).toBe(true); // WAL or SST written
    expect(f.logs.join("\n")).not.toContain(MARKER);
  });
});

test("the master key file is created with mode 0600, one 256-bit key", async () => {
  f = await startTestLeader();
  const path = join(f.dataDir, "master.key");
  expect((await stat(path)).mode & 0o777).toBe(0o600);
  const ring = parseKeyring(await readFile(path, "utf8"), path);
  expect(ring.keys.size).toBe(1);
  expect(ring.keys.get(ring.current)?.length).toBe(32);
});

test("a flipped byte or two swapped chunks are DATA_LOSS naming run, task and offset; the rest of the log reads", async () => {
  f = await startTestLeader({ storage: { chunk_bytes: 4096 } });
  const expected = Buffer.from(await pushTask(f.url, "tamper", "build", 3000));
  const dataDir = f.dataDir;
  let starts: number[] = [];
  await f.restart({
    between: async () => {
      const kv = await KvStore.open(join(dataDir, "joblogs"), { compression: false });
      try {
        const entries: Array<[Buffer, Buffer]> = [];
        for await (const entry of kv.entries(chunkRange("tamper", "build"))) entries.push(entry);
        starts = entries.map(([key]) => chunkOffset(key));
        const [k3, v3] = entries[3] as [Buffer, Buffer];
        const flipped = Buffer.from(v3);
        flipped[40] = (flipped[40] as number) ^ 0x01;
        const [k7, v7] = entries[7] as [Buffer, Buffer];
        const [k8, v8] = entries[8] as [Buffer, Buffer];
        await kv.write(
          [
            { type: "put", key: k3, value: flipped },
            { type: "put", key: k7, value: v8 },
            { type: "put", key: k8, value: v7 },
          ],
          true,
        );
      } finally {
        await kv.close();
      }
    },
  });
  expect(starts.length).toBeGreaterThan(10);
  const at = (i: number) => starts[i] as number;
  client = new LeaderClient(f.url);

  // From 0 the read stops before the damaged chunk: it never returns a byte of it.
  let offset = 0;
  const before: Buffer[] = [];
  while (offset < at(3)) {
    const r = await client.read({ runId: "tamper", task: "build", offset: BigInt(offset) });
    expect(Number(r.nextOffset)).toBeLessThanOrEqual(at(3));
    before.push(Buffer.from(r.data));
    offset = Number(r.nextOffset);
  }
  expect(Buffer.concat(before).equals(expected.subarray(0, at(3)))).toBe(true);

  for (const [i, next] of [
    [3, 4],
    [7, 8],
    [8, 9],
  ] as const) {
    const err = await readError(client, "tamper", "build", at(i));
    expect(err.code).toBe(status.DATA_LOSS);
    expect(err.details).toContain(`offset ${at(i)} of task build in run tamper`);
    expect(err.details).toContain(`reads on from offset ${at(next)}`);
  }
  // Between and after the damage, every byte reads back as written.
  const r4 = await client.read({ runId: "tamper", task: "build", offset: BigInt(at(4)) });
  expect(Buffer.from(r4.data).equals(expected.subarray(at(4), Number(r4.nextOffset)))).toBe(true);
  expect(Number(r4.nextOffset)).toBeLessThanOrEqual(at(7));
  let rest = at(9);
  const after: Buffer[] = [];
  for (let guard = 0; guard < 10_000 && rest < expected.length; guard++) {
    const r = await client.read({ runId: "tamper", task: "build", offset: BigInt(rest) });
    after.push(Buffer.from(r.data));
    rest = Number(r.nextOffset);
  }
  expect(Buffer.concat(after).equals(expected.subarray(at(9)))).toBe(true);
});

/** The CLI in a child process; asynchronous, because the leader it talks to runs in this one. */
function cli(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "src/cli/main.ts", ...args],
      { encoding: "utf8", timeout: 60_000, env: { ...process.env, JOBLOG_CONFIG: "" } },
      (err, stdout, stderr) => resolve({ status: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

test("keys rotate re-wraps every data key under a new master key, online and offline; restarts read everything", async () => {
  f = await startTestLeader();
  const keyFile = join(f.dataDir, "master.key");
  const expected = new Map<string, string>();
  for (const run of ["rot-a", "rot-b", "rot-c"]) expected.set(run, await pushTask(f.url, run, "build", 500));
  const first = parseKeyring(await readFile(keyFile, "utf8"), keyFile).current;

  const online = await cli("keys", "rotate", "--leader", f.url);
  expect(online.stderr).toBe("");
  expect(online.status).toBe(0);
  expect(online.stdout).toMatch(/rotated: 3 data keys re-wrapped, 0 already current \(local master key .*master\.key\)/);
  const second = parseKeyring(await readFile(keyFile, "utf8"), keyFile);
  expect(second.current).not.toBe(first);
  expect([...second.keys.keys()]).toEqual([second.current]);
  expect((await stat(keyFile)).mode & 0o777).toBe(0o600);

  // A run created after the rotation, then the offline form on the stopped leader.
  expected.set("rot-d", await pushTask(f.url, "rot-d", "build", 500));
  const dataDir = f.dataDir;
  let offline: Awaited<ReturnType<typeof cli>> | undefined;
  await f.restart({
    between: async () => {
      offline = await cli("keys", "rotate", "--data", dataDir);
    },
  });
  expect(offline?.stderr).toBe("");
  expect(offline?.stdout).toMatch(/rotated: 4 data keys re-wrapped, 0 already current/);
  const third = parseKeyring(await readFile(keyFile, "utf8"), keyFile);
  expect(third.current).not.toBe(second.current);
  expect(third.keys.size).toBe(1);

  client = new LeaderClient(f.url);
  for (const [run, text] of expected) expect(await readAll(client, run, "build")).toBe(text);
});

test("the leader refuses a master key file others can read, a malformed one, and a missing one beside stored keys", async () => {
  f = await startTestLeader();
  await pushTask(f.url, "keyfile", "build", 10);
  const keyFile = join(f.dataDir, "master.key");
  const good = await readFile(keyFile, "utf8");
  const { chmod, rm } = await import("node:fs/promises");
  const attempts: Array<[string, () => Promise<void>, RegExp]> = [
    ["mode 0644", () => chmod(keyFile, 0o644), /master\.key is accessible to other users \(mode 0644\); it must be 0600/],
    [
      "malformed",
      async () => {
        await writeFile(keyFile, good.replace(/key (\w+) \S+/, "key $1 c2hvcnQ="), { mode: 0o600 });
        await chmod(keyFile, 0o600);
      },
      /master\.key is malformed \(line 3\): a master key is 256 bits, this one is 40/,
    ],
    ["missing", () => rm(keyFile), /master key file .*master\.key is missing, but the log store holds data keys/],
  ];
  for (const [name, damage, message] of attempts) {
    await expect(
      f.restart({
        between: async () => {
          await writeFile(keyFile, good, { mode: 0o600 });
          await chmod(keyFile, 0o600);
          await damage();
        },
      }),
      name,
    ).rejects.toThrow(message);
  }
  // Put back, it starts and reads again.
  await writeFile(keyFile, good, { mode: 0o600 });
  const { startLeader } = await import("../../src/leader/leader.js");
  f.leader = await startLeader(f.config, () => {});
  client = new LeaderClient(`http://${f.leader.address}`);
  expect((await readAll(client, "keyfile", "build")).split("\n")).toHaveLength(11);
});
