import { execFileSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, expect, test } from "vitest";

const root = join(import.meta.dirname, "../..");
const bufBin = join(root, "node_modules/.bin/buf");
const dirs: string[] = [];

afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function files(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out.set(relative(dir, path), await readFile(path, "utf8"));
  }
  return out;
}

test("gen/ is exactly what `buf generate` makes from proto/", async () => {
  const out = await mkdtemp(join(tmpdir(), "joblog-gen-"));
  dirs.push(out);
  execFileSync(bufBin, ["generate", "--output", out], { cwd: root, stdio: "pipe" });
  const fresh = await files(join(out, "gen"));
  const committed = await files(join(root, "gen"));
  expect([...committed.keys()].sort()).toEqual([...fresh.keys()].sort());
  for (const [path, text] of fresh) expect(committed.get(path), `gen/${path} is stale: run npm run generate`).toBe(text);
});

test("the proto passes buf lint", () => {
  execFileSync(bufBin, ["lint"], { cwd: root, stdio: "pipe" });
});
