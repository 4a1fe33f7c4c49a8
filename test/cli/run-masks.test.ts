import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";
import { createGrpcLogClient, type GrpcLogClient, readAll } from "../helpers/log-service-client.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

let f: LeaderFixture;
let g: GrpcLogClient;
let dir: string;
let baseEnv: NodeJS.ProcessEnv;

beforeAll(async () => {
  f = await startTestLeader();
  g = createGrpcLogClient(f.url);
  dir = await mkdtemp(join(tmpdir(), "joblog-run-masks-"));
  await writeFile(join(dir, "joblog.yaml"), "");
  baseEnv = { PATH: process.env.PATH, HOME: dir, JOBLOG_LEADER: f.url, JOBLOG_CONFIG: join(dir, "joblog.yaml") };
});

afterAll(async () => {
  g?.close();
  await f?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** `joblog ARGS...` to completion (bounded by a timeout that kills it). */
function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "src/cli/main.ts", ...args],
      { cwd: ROOT, env: { ...baseEnv, ...env }, timeout: 20_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("joblog run masks", () => {
  test("values named by --mask-env and JOBLOG_MASK_ENV, and --mask values, are *** in the echo and in the stored log", async () => {
    const env = { DEPLOY_TOKEN: "tok-1234-abcd", DB_PASSWORD: "p@ss word!", JOBLOG_MASK_ENV: "DB_PASSWORD, UNSET_ONE" };
    const script = 'echo "token=$DEPLOY_TOKEN pw=$DB_PASSWORD lit=literal-secret"; printf "%s" "$DEPLOY_TOKEN" | base64';
    const r = await cli(
      ["run", "--run", "cli-masks", "--task", "t", "--mask-env", "DEPLOY_TOKEN", "--mask", "literal-secret", "--", "sh", "-c", script],
      env,
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("token=*** pw=*** lit=***\n***\n");
    expect(r.stderr).toContain("JOBLOG_MASK_ENV entry UNSET_ONE: environment variable UNSET_ONE is unset or empty");
    const stored = (await readAll(g.client, "cli-masks", "t")).text;
    expect(stored).toContain('"line":"token=*** pw=*** lit=***"');
    for (const secret of ["tok-1234-abcd", "p@ss word!", "literal-secret", Buffer.from("tok-1234-abcd").toString("base64")]) {
      expect(stored).not.toContain(secret);
    }
  });

  test("a value under 4 bytes is refused before the command runs, naming where it came from and not the value", async () => {
    const r = await cli(["run", "--run", "cli-masks-2", "--task", "t", "--mask-env", "PIN", "--", "sh", "-c", "echo ran"], { PIN: "987" });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("--mask-env PIN (the value of PIN) is 3 bytes long; a mask must be at least 4 bytes");
    expect(r.stderr).not.toContain("987");
  });
});
