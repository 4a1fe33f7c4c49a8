import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { LeaderClient } from "../../src/client/leader-client.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import { contentsServedFrom, runContents } from "../helpers/run-contents.js";
import { S3RVER_CREDENTIALS, type S3Server, startS3Server } from "../helpers/s3-server.js";
import { pushTask } from "../helpers/task-logs.js";

/** `joblog backup`, `backup verify` and `restore` as an operator runs them, to a directory and to S3 (s3rver). */

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CHILD_TIMEOUT_MS = 30_000;

let dir: string;
let f: LeaderFixture;
let s3: S3Server;
let env: NodeJS.ProcessEnv;
let contents: Awaited<ReturnType<typeof runContents>>;

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], extra: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], {
    cwd: ROOT,
    env: { ...env, ...extra },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (s: string) => {
    stdout += s;
  });
  child.stderr.setEncoding("utf8").on("data", (s: string) => {
    stderr += s;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`joblog ${args.join(" ")} did not exit within ${CHILD_TIMEOUT_MS} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, CHILD_TIMEOUT_MS);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-backup-cli-"));
  s3 = await startS3Server("joblog-backups");
  f = await startTestLeader();
  const config = join(dir, "joblog.yaml");
  await writeFile(config, "");
  env = { PATH: process.env.PATH, HOME: dir, JOBLOG_LEADER: f.url, JOBLOG_CONFIG: config };
  for (let r = 0; r < 3; r++) await pushTask(f.url, `cli-${r}`, "build", 300);
  const client = new LeaderClient(f.url);
  contents = await runContents(client);
  client.close();
});

afterAll(async () => {
  await f?.dispose();
  await s3?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A data directory holding the leader's master key, as an operator who kept it apart would prepare it. */
async function dataDirWithKey(name: string): Promise<string> {
  const data = join(dir, name);
  await mkdir(data);
  await writeFile(join(data, "master.key"), await readFile(join(f.dataDir, "master.key")), { mode: 0o600 });
  return data;
}

describe("joblog backup / backup verify / restore", () => {
  test("online to a directory with progress on stderr, verify, restore (refused without the key, then with it)", async () => {
    const target = join(dir, "online");
    const backup = await cli(["backup", "--to", target]);
    expect(backup.stderr).toMatch(/^backup: done, 2 files, \d+ records, [\d.]+ MB/m);
    expect(backup.stdout).toMatch(new RegExp(`^backup: 2 files, \\d+ records, [\\d.]+ MB in [\\d.]+ s \\([\\d.]+ MB/s\\) to ${target}\\n`));
    expect(backup.code).toBe(0);

    const verify = await cli(["backup", "verify", "--from", target]);
    expect(verify.stdout).toMatch(/^verify: ok, 2 files, \d+ records/);
    expect(verify.code).toBe(0);

    const noKey = join(dir, "no-key");
    const refused = await cli(["restore", "--from", target, "--data", noKey]);
    expect(refused.stderr).toContain(`joblog: cannot restore: the master key file ${join(noKey, "master.key")} does not exist`);
    expect(refused.code).toBe(1);

    const data = await dataDirWithKey("from-online");
    const restore = await cli(["restore", "--from", target, "--data", data]);
    expect(restore.stdout).toContain(`into ${data}`);
    expect(restore.code).toBe(0);
    expect(await contentsServedFrom(data)).toEqual(contents);
  });

  test("offline to S3 with the AWS environment (AWS_ENDPOINT_URL), refused while the leader runs; verify and restore from S3", async () => {
    const aws = {
      AWS_ENDPOINT_URL: s3.endpoint,
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.access_key_id,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secret_access_key,
    };
    const url = `s3://${s3.bucket}/nightly/2025-02-12`;
    const running = await cli(["backup", "--data", f.dataDir, "--to", url], aws);
    expect(running.stderr).toMatch(/another process \(a running leader\?\) is using this data directory; stop the leader first/);
    expect(running.code).toBe(1);

    await f.leader.stop();
    const backup = await cli(["backup", "--data", f.dataDir, "--to", url, "--part-mb", "1"], aws);
    expect(backup.stdout).toContain(`to s3://${s3.bucket}/nightly/2025-02-12/`);
    expect(backup.code).toBe(0);
    const verify = await cli(["backup", "verify", "--from", url], aws);
    expect(verify.stdout).toMatch(/^verify: ok, \d+ files, .*\(offline, joblog /);
    const data = await dataDirWithKey("from-s3");
    const restore = await cli(["restore", "--from", url, "--data", data], aws);
    expect(restore.code).toBe(0);
    expect(await contentsServedFrom(data)).toEqual(contents);
  });
});
