import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { configSchema } from "../../src/config/config-schema.js";
import { ConfigError, type LoadConfigOptions, loadConfig } from "../../src/config/load-config.js";

let dir: string;
let emptyFile: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-config-test-"));
  emptyFile = await configFile("empty.yaml", "");
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let fileCount = 0;
/** Writes `text` to a fresh file in the temp dir and returns its path. */
async function configFile(name: string, text: string): Promise<string> {
  const file = join(dir, `${++fileCount}-${name}`);
  await writeFile(file, text);
  return file;
}

/** The ConfigError `loadConfig` throws for `options`. */
function configError(options: LoadConfigOptions): ConfigError {
  try {
    loadConfig(options);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("loadConfig did not throw");
}

describe("loadConfig", () => {
  test("gives the defaults for an empty file and no environment", () => {
    const config = loadConfig({ file: emptyFile, env: {} });
    expect(config.server.listen).toBe("127.0.0.1:8080");
    expect(config.server.data_dir).toBe("./data");
    expect(config.server.compression).toBe("none");
    expect(config.storage.durability).toBe("wal");
    expect(config.limits.max_line_bytes).toBe(64 * 1024);
    expect(config.worker.backoff_initial_ms).toBe(100);
    expect(config.runs.idle_timeout_seconds).toBe(600);
    expect(config).toEqual(configSchema.parse({}));
  });

  test("a file holding only comments also gives the defaults", async () => {
    const file = await configFile("comments.yaml", "# nothing set yet\n");
    expect(loadConfig({ file, env: {} })).toEqual(configSchema.parse({}));
  });

  test("applies the values of a YAML file and keeps defaults for the rest", async () => {
    const file = await configFile(
      "values.yaml",
      [
        "server:",
        "  listen: 0.0.0.0:7000",
        "  data_dir: /var/lib/joblog",
        "storage:",
        "  durability: fsync",
        "limits:",
        "  max_line_bytes: 4096",
        "",
      ].join("\n"),
    );
    const config = loadConfig({ file, env: {} });
    expect(config.server.listen).toBe("0.0.0.0:7000");
    expect(config.server.data_dir).toBe("/var/lib/joblog");
    expect(config.storage.durability).toBe("fsync");
    expect(config.limits.max_line_bytes).toBe(4096);
    expect(config.server.compression).toBe("none");
    expect(config.limits.max_lines_per_batch).toBe(10_000);
  });

  test("an unknown key fails with a ConfigError naming the key's path and the file", async () => {
    const file = await configFile("typo.yaml", "server:\n  listn: 0.0.0.0:7000\n");
    const err = configError({ file, env: {} });
    expect(err.message).toContain("server.listn");
    expect(err.message).toContain("unknown key");
    expect(err.message).toContain(file);
  });

  test("an unknown top-level section is named too", async () => {
    const file = await configFile("section.yaml", "srever:\n  listen: 0.0.0.0:7000\n");
    expect(configError({ file, env: {} }).message).toContain("srever: unknown key");
  });

  test("a value of the wrong type fails naming the key's path", async () => {
    const file = await configFile("type.yaml", "limits:\n  max_line_bytes: lots\n");
    expect(configError({ file, env: {} }).message).toContain("limits.max_line_bytes");
  });

  test("a value out of range fails naming the key's path", async () => {
    const file = await configFile("range.yaml", "limits:\n  max_line_bytes: 10\nserver:\n  listen: nowhere\n");
    const message = configError({ file, env: {} }).message;
    expect(message).toContain("limits.max_line_bytes");
    expect(message).toContain("server.listen");
  });

  test("the aws key provider needs a key id; deflate levels stop at 9", async () => {
    const file = await configFile(
      "keys.yaml",
      "encryption:\n  provider: aws\nstorage:\n  chunk_compression: deflate\n  chunk_compression_level: 11\n",
    );
    const message = configError({ file, env: {} }).message;
    expect(message).toContain("encryption.aws.key_id: required when encryption.provider is aws");
    expect(message).toContain("storage.chunk_compression_level: deflate levels are 0-9");
    const ok = loadConfig({ file: emptyFile, env: { JOBLOG_ENCRYPTION__PROVIDER: "aws", JOBLOG_ENCRYPTION__AWS__KEY_ID: "alias/joblog" } });
    expect(ok.encryption).toMatchObject({ provider: "aws", aws: { key_id: "alias/joblog", timeout_ms: 5000 } });
  });

  test("environment variables override the file, by path with __ between levels", async () => {
    const file = await configFile("env.yaml", "server:\n  listen: 127.0.0.1:7000\n");
    const config = loadConfig({
      file,
      env: { JOBLOG_SERVER__LISTEN: "0.0.0.0:9000", JOBLOG_LIMITS__MAX_LINE_BYTES: "1000", JOBLOG_STORAGE__DURABILITY: "fsync" },
    });
    expect(config.server.listen).toBe("0.0.0.0:9000");
    expect(config.limits.max_line_bytes).toBe(1000);
    expect(config.storage.durability).toBe("fsync");
  });

  test("ignores environment variables that are not JOBLOG_ paths", () => {
    const config = loadConfig({
      file: emptyFile,
      env: { JOBLOG_LEADER: "http://elsewhere:1", JOBLOG_CONFIG: "/nope.yaml", SERVER__LISTEN: "0.0.0.0:1", PATH: "/bin" },
    });
    expect(config).toEqual(configSchema.parse({}));
  });

  test("an unknown key from the environment is named by its path", () => {
    const err = configError({ file: emptyFile, env: { JOBLOG_SERVER__LISTN: "0.0.0.0:9000" } });
    expect(err.message).toContain("server.listn");
  });

  test("a wrong type from the environment is named by its path", () => {
    const err = configError({ file: emptyFile, env: { JOBLOG_LIMITS__MAX_LINE_BYTES: "many" } });
    expect(err.message).toContain("limits.max_line_bytes");
  });

  test("an environment variable that sets a key inside a scalar names the variable", async () => {
    const file = await configFile("scalar.yaml", "server: here\n");
    const err = configError({ file, env: { JOBLOG_SERVER__LISTEN: "0.0.0.0:9000" } });
    expect(err.message).toContain("JOBLOG_SERVER__LISTEN");
    expect(err.message).toContain("server");
  });

  test("overrides win over the environment and the file; undefined overrides are ignored", async () => {
    const file = await configFile("overrides.yaml", "server:\n  listen: 127.0.0.1:7000\n  data_dir: /from/file\n");
    const config = loadConfig({
      file,
      env: { JOBLOG_SERVER__LISTEN: "0.0.0.0:9000", JOBLOG_LIMITS__MAX_LINE_BYTES: "1000" },
      overrides: { "server.listen": "127.0.0.1:1234", "limits.max_line_bytes": 2000, "server.data_dir": undefined },
    });
    expect(config.server.listen).toBe("127.0.0.1:1234");
    expect(config.limits.max_line_bytes).toBe(2000);
    expect(config.server.data_dir).toBe("/from/file");
  });

  test("invalid YAML fails with a ConfigError naming the file", async () => {
    const file = await configFile("broken.yaml", "server:\n  listen: [127.0.0.1:7000\n");
    const err = configError({ file, env: {} });
    expect(err.message).toContain(file);
    expect(err.message).toContain("not valid YAML");
  });

  test("a file that is not a mapping fails with a ConfigError", async () => {
    const file = await configFile("list.yaml", "- server\n- limits\n");
    expect(configError({ file, env: {} }).message).toContain("must hold a mapping");
  });

  test("a missing file fails with a ConfigError naming it", () => {
    const file = join(dir, "does-not-exist.yaml");
    const err = configError({ file, env: {} });
    expect(err.message).toContain(file);
    expect(err.message).toContain("ENOENT");
  });
});

describe("storage.min_free_bytes", () => {
  test("absent means automatic; 0 turns the floor off; a floor under 4 MiB is refused naming the key", async () => {
    expect(loadConfig({ file: emptyFile, env: {} }).storage.min_free_bytes).toBeUndefined();
    const off = await configFile("floor-off.yaml", "storage:\n  min_free_bytes: 0\n");
    expect(loadConfig({ file: off, env: {} }).storage.min_free_bytes).toBe(0);
    const set = await configFile("floor-set.yaml", "storage:\n  min_free_bytes: 104857600\n");
    expect(loadConfig({ file: set, env: {} }).storage.min_free_bytes).toBe(100 * 1024 * 1024);
    const tiny = await configFile("floor-tiny.yaml", "storage:\n  min_free_bytes: 1048576\n");
    expect(configError({ file: tiny, env: {} }).message).toMatch(/storage\.min_free_bytes.*at least 4194304 \(4 MiB\), or 0/);
  });
});
