import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ConfigError, loadConfig } from "../../src/config/load-config.js";
import { startLeader } from "../../src/leader/leader.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-auth-config-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const HASH = "a".repeat(64);

async function problems(yaml: string): Promise<string> {
  const file = join(dir, `c-${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(file, yaml);
  try {
    loadConfig({ file, env: {} });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("the configuration was accepted");
}

describe("auth and tls configuration", () => {
  test("each wrong token entry is refused naming its key", async () => {
    expect(await problems(`auth:\n  tokens:\n    - {name: a, sha256: "${HASH}", role: root}`)).toContain("auth.tokens.0.role");
    expect(await problems(`auth:\n  tokens:\n    - {name: a, sha256: not-a-hash, role: reader}`)).toContain(
      "auth.tokens.0.sha256: expected 64 lowercase hex digits",
    );
    expect(await problems(`auth:\n  tokens:\n    - {name: a, sha256: "${HASH}", role: reader, run: r-1}`)).toContain(
      "auth.tokens.0.run: only a worker token can be limited to a run",
    );
    expect(await problems(`auth:\n  tokens:\n    - {name: a, sha256: "${HASH}", role: admin, workspaces: [ci]}`)).toContain(
      "auth.tokens.0.workspaces",
    );
    expect(
      await problems(
        `auth:\n  tokens:\n    - {name: a, sha256: "${HASH}", role: reader}\n    - {name: a, sha256: "${"b".repeat(64)}", role: worker}`,
      ),
    ).toContain("auth.tokens.1.name: duplicate token name a");
    expect(await problems(`auth:\n  tokens:\n    - {name: a, token: secret, sha256: "${HASH}", role: reader}`)).toContain(
      "auth.tokens.0.token: unknown key",
    );
  });

  test("tls needs a certificate and a key", async () => {
    expect(await problems("server:\n  tls:\n    cert_file: /x.pem")).toContain("server.tls.key_file");
  });

  test("an unreadable certificate stops the leader naming the key and the path", async () => {
    const config = loadConfig({
      env: {},
      overrides: {
        "server.listen": "127.0.0.1:0",
        "server.data_dir": join(dir, "data"),
        "server.tls": { cert_file: join(dir, "missing.pem"), key_file: join(dir, "missing.key") },
      },
    });
    await expect(startLeader(config, () => undefined)).rejects.toThrow(/server\.tls\.cert_file: cannot read .*missing\.pem: ENOENT/);
  });
});
