import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { checkListenPolicy, isLoopbackHost, UnsafeListenError } from "../../src/auth/listen-policy.js";
import { LeaderClient } from "../../src/client/leader-client.js";
import { configSchema } from "../../src/config/config-schema.js";
import { loadConfig } from "../../src/config/load-config.js";
import { startLeader } from "../../src/leader/leader.js";
import { runCli } from "../helpers/run-cli.js";
import { makeTestTokens } from "../helpers/test-tokens.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-safe-defaults-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const config = (data: string, extra: Record<string, unknown>) =>
  configSchema.parse({ server: { listen: "0.0.0.0:0", data_dir: join(dir, data) }, ...extra });

describe("listening without tokens", () => {
  test("loopback addresses are told apart from the rest", () => {
    for (const host of ["127.0.0.1", "127.8.9.1", "localhost", "::1", "[::1]", "::ffff:127.0.0.1"])
      expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ["0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "example.com", "::ffff:10.0.0.1"])
      expect(isLoopbackHost(host), host).toBe(false);
  });

  test("a non-loopback address is refused before anything is created, naming the ways out", async () => {
    const err = await startLeader(config("refused", {}), () => undefined).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UnsafeListenError);
    expect(String(err)).toContain("--insecure-no-auth");
    expect(String(err)).toContain("auth.tokens");
    expect(existsSync(join(dir, "refused"))).toBe(false);
  });

  // These two check the policy without binding 0.0.0.0: tests stay on loopback.
  test("auth.insecure_no_auth lets a non-loopback address through, with a warning at every start", () => {
    const warnings: string[] = [];
    checkListenPolicy(config("insecure", { auth: { insecure_no_auth: true } }), "0.0.0.0", (m) => warnings.push(m));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("WITHOUT AUTHENTICATION");
  });

  test("with tokens a non-loopback address passes without a warning", () => {
    const warnings: string[] = [];
    checkListenPolicy(config("tokens", { auth: { tokens: makeTestTokens().entries } }), "0.0.0.0", (m) => warnings.push(m));
    expect(warnings).toEqual([]);
  });

  test("joblog leader refuses --listen 0.0.0.0 without auth, exit code 1", async () => {
    const r = await runCli(["leader", "--listen", "0.0.0.0:0", "--data", join(dir, "cli-refused")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("refusing to listen on 0.0.0.0:0 without authentication");
    expect(r.stderr).toContain("--insecure-no-auth");
  });
});

describe("joblog tokens create", () => {
  test("prints a token once and config lines that, added to a config file, make the leader accept it", async () => {
    const r = await runCli(["tokens", "create", "--role", "reader", "--workspace", "ci", "--name", "ci-readers"]);
    expect(r.code).toBe(0);
    const token = /\n {2}(jl_[A-Za-z0-9_-]{43})\n/.exec(r.stdout)?.[1];
    expect(token).toBeDefined();
    const yaml = r.stdout.slice(r.stdout.indexOf("auth:"));
    expect(yaml).toContain("name: ci-readers");
    expect(yaml).toContain("- ci");
    expect(yaml).not.toContain(token as string);
    const file = join(dir, "joblog.yaml");
    await writeFile(file, `server:\n  listen: 127.0.0.1:0\n  data_dir: ${join(dir, "created")}\n${yaml.replace(/^ {2}/gm, "")}`);
    const leader = await startLeader(loadConfig({ file, env: {} }), () => undefined);
    const client = new LeaderClient(`http://${leader.address}`, { token: token as string });
    try {
      expect((await client.listRuns({})).runs).toEqual([]);
    } finally {
      client.close();
      await leader.stop();
    }
  });

  test("refuses a run limit on a reader token and an unknown role, naming the option", async () => {
    const run = await runCli(["tokens", "create", "--role", "reader", "--run", "r-1"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("--run");
    const role = await runCli(["tokens", "create", "--role", "root"]);
    expect(role.code).toBe(2);
    expect(role.stderr).toContain("--role");
  });
});
