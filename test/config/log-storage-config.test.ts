import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { archiveTarget } from "../../src/archive/archive-settings.js";
import { loadConfig } from "../../src/config/load-config.js";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "joblog-config-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function load(yaml: string, env: NodeJS.ProcessEnv = {}) {
  const file = join(dir, `c-${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(file, yaml);
  return loadConfig({ file, env });
}

describe("log_storage", () => {
  test("without an archive, nothing is archived and the flush interval defaults to 10 s", async () => {
    const config = await load("");
    expect(archiveTarget(config.log_storage)).toBeUndefined();
    expect(config.log_storage.flush_interval_ms).toBe(10_000);
  });

  test("the legacy s3 block is accepted as an S3 archive", async () => {
    const config = await load("log_storage:\n  s3:\n    bucket: old-logs\n    region: eu-west-1\n    prefix: ci/\n");
    expect(archiveTarget(config.log_storage)).toMatchObject({
      type: "s3",
      bucket: "old-logs",
      region: "eu-west-1",
      prefix: "ci/",
      forcePathStyle: false,
      credentials: undefined,
      sse: undefined,
    });
  });

  test("archive wins over the legacy s3 block", async () => {
    const config = await load(
      "log_storage:\n  s3:\n    bucket: old-logs\n  archive:\n    type: local\n    path: /var/lib/joblog/archive\n    prefix: x/\n",
    );
    expect(archiveTarget(config.log_storage)).toEqual({ type: "local", path: "/var/lib/joblog/archive", prefix: "x/" });
    const both = await load("log_storage:\n  s3:\n    bucket: old-logs\n  archive:\n    type: s3\n    bucket: new-logs\n");
    expect(archiveTarget(both.log_storage)).toMatchObject({ type: "s3", bucket: "new-logs" });
  });

  test("an endpoint means path-style addressing and a default region; SSE-KMS and credentials pass through", async () => {
    const config = await load(
      "log_storage:\n  archive:\n    type: s3\n    bucket: logs\n    endpoint: http://127.0.0.1:9000\n    sse: aws:kms\n    kms_key_id: alias/joblog\n",
      { JOBLOG_LOG_STORAGE__ARCHIVE__ACCESS_KEY_ID: "AKIA1", JOBLOG_LOG_STORAGE__ARCHIVE__SECRET_ACCESS_KEY: "s3cret" },
    );
    expect(archiveTarget(config.log_storage)).toMatchObject({
      forcePathStyle: true,
      region: "us-east-1",
      endpoint: "http://127.0.0.1:9000",
      sse: { type: "aws:kms", kmsKeyId: "alias/joblog" },
      credentials: { accessKeyId: "AKIA1", secretAccessKey: "s3cret" },
    });
  });

  test("legacy_workspace names the workspace legacy logs count as in; absent, they are in none", async () => {
    expect((await load("log_storage:\n  local_dir: /old\n")).log_storage.legacy_workspace).toBeUndefined();
    const config = await load("log_storage:\n  local_dir: /old\n  legacy_workspace: ws-old\n");
    expect(config.log_storage.legacy_workspace).toBe("ws-old");
  });

  test.each([
    ["log_storage:\n  archive:\n    type: s3\n", "log_storage.archive.bucket: required when type is s3"],
    ["log_storage:\n  archive:\n    type: local\n", "log_storage.archive.path: required when type is local"],
    ["log_storage:\n  archive:\n    type: ftp\n", "log_storage.archive.type"],
    ["log_storage:\n  archive:\n    type: s3\n    bucket: ab\n", "log_storage.archive.bucket"],
    ["log_storage:\n  archive:\n    type: local\n    path: /a\n    prefix: ../up/\n", "log_storage.archive.prefix"],
    ["log_storage:\n  archive:\n    type: local\n    path: /a\n    prefix: /abs/\n", "log_storage.archive.prefix"],
    ["log_storage:\n  s3:\n    region: x\n", "log_storage.s3.bucket"],
    ["log_storage:\n  s3:\n    bucket: abc\n    access_key_id: A\n", "log_storage.s3.secret_access_key"],
    ["log_storage:\n  flush_interval_ms: 5\n", "log_storage.flush_interval_ms"],
    ["log_storage:\n  archive:\n    type: local\n    path: /a\n    colour: red\n", "log_storage.archive.colour: unknown key"],
    ["log_storage:\n  local_dir: /old\n  legacy_workspace: ../up\n", 'log_storage.legacy_workspace: workspace "../up" contains ".."'],
    ["log_storage:\n  local_dir: /old\n  legacy_workspace: a/b\n", "log_storage.legacy_workspace: workspace"],
    ["log_storage:\n  local_dir: /old\n  legacy_workspace: ''\n", "log_storage.legacy_workspace: workspace is empty"],
    ["log_storage:\n  legacy_workspace: ws-old\n", "log_storage.legacy_workspace: only used with local_dir"],
  ])("refuses %j naming the key", async (yaml, message) => {
    await expect(load(yaml)).rejects.toThrow(message);
  });
});
