import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { access, constants, mkdir, open, readdir, readFile, rename, rm, rmdir, stat } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { type ArchiveBackend, ArchiveKeyError, ArchiveVerifyError, type ObjectDigest } from "./archive-backend.js";
import { type RetryPolicy, withRetry } from "./request-retry.js";

const SAFE_SEGMENT = /^[A-Za-z0-9!_.*'()-]+$/;

/**
 * The `local` backend: a directory, each object key a path below it (`/` in the
 * key makes subdirectories). Objects appear whole or not at all (written to a
 * temporary name, synced, renamed), and a key can never name a path outside it.
 */
export class LocalBackend implements ArchiveBackend {
  readonly description: string;
  private readonly root: string;

  constructor(
    root: string,
    private readonly retry: RetryPolicy,
    private readonly signal?: AbortSignal,
  ) {
    this.root = resolve(root);
    this.description = this.root;
  }

  /** The file of a key; throws ArchiveKeyError for any key that could leave the root. */
  pathOf(key: string): string {
    const segments = key.split("/");
    if (segments.some((s) => !SAFE_SEGMENT.test(s) || s === "." || s === "..")) {
      throw new ArchiveKeyError(`archive key ${JSON.stringify(key)} is not a safe relative path`);
    }
    const path = resolve(this.root, ...segments);
    const rel = relative(this.root, path);
    if (rel === "" || rel.startsWith(`..${sep}`) || rel === ".." || isAbsolute(rel)) {
      throw new ArchiveKeyError(`archive key ${JSON.stringify(key)} leaves the archive directory`);
    }
    return path;
  }

  put(key: string, body: Buffer): Promise<ObjectDigest> {
    return this.putStream(key, once(body));
  }

  async putStream(key: string, pieces: AsyncIterable<Buffer>): Promise<ObjectDigest> {
    const path = this.pathOf(key);
    const temp = `${path}.tmp-${randomBytes(6).toString("hex")}`;
    await this.attempt(() => mkdir(dirname(path), { recursive: true }));
    const md5 = createHash("md5");
    let size = 0;
    const file = await open(temp, "w", 0o644);
    try {
      for await (const piece of pieces) {
        await file.write(piece);
        md5.update(piece);
        size += piece.length;
      }
      await file.sync();
    } catch (err) {
      await file.close();
      await rm(temp, { force: true });
      throw err;
    }
    await file.close();
    await rename(temp, path);
    return { size, md5: md5.digest("hex") };
  }

  async verify(key: string, digest: ObjectDigest): Promise<void> {
    const path = this.pathOf(key);
    const info = await this.attempt(() => stat(path).catch(absentAs(undefined)));
    if (!info) throw new ArchiveVerifyError(`${key} is missing from ${this.root}`);
    if (info.size !== digest.size) throw new ArchiveVerifyError(`${key} holds ${info.size} bytes, not ${digest.size}`);
    const md5 = createHash("md5");
    for await (const piece of createReadStream(path)) md5.update(piece as Buffer);
    const got = md5.digest("hex");
    if (got !== digest.md5) throw new ArchiveVerifyError(`${key} has MD5 ${got}, not ${digest.md5}`);
  }

  async getRange(key: string, start: number, end: number): Promise<Buffer | undefined> {
    const path = this.pathOf(key);
    return this.attempt(async () => {
      let file: Awaited<ReturnType<typeof open>>;
      try {
        file = await open(path, "r");
      } catch (err) {
        return absentAs(undefined)(err);
      }
      try {
        const buf = Buffer.allocUnsafe(end - start);
        const { bytesRead } = await file.read(buf, 0, buf.length, start);
        return buf.subarray(0, bytesRead);
      } finally {
        await file.close();
      }
    });
  }

  async get(key: string): Promise<Buffer | undefined> {
    const path = this.pathOf(key);
    return this.attempt(() => readFile(path).catch(absentAs(undefined)));
  }

  async *list(prefix: string): AsyncIterable<string> {
    // The directory holding the prefix, then entries whose key starts with it.
    const slash = prefix.lastIndexOf("/");
    const dirKey = prefix.slice(0, slash + 1);
    const dir = dirKey === "" ? this.root : this.pathOf(dirKey.slice(0, -1));
    const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(absentAs([]));
    const keys = entries
      .filter((e) => e.isFile() && !e.name.includes(".tmp-"))
      .map((e) => relative(this.root, join(e.parentPath, e.name)).split(sep).join("/"))
      .filter((k) => k.startsWith(prefix))
      .sort();
    yield* keys;
  }

  async probe(): Promise<void> {
    try {
      await mkdir(this.root, { recursive: true });
      await access(this.root, constants.W_OK);
    } catch (err) {
      throw new Error(`archive directory ${this.root} is not writable (${(err as NodeJS.ErrnoException).code ?? String(err)})`, {
        cause: err,
      });
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    const dirs = new Set<string>();
    for (const key of keys) {
      const path = this.pathOf(key);
      await this.attempt(() => rm(path, { force: true }));
      dirs.add(dirname(path));
    }
    // Directories the deletes emptied (a run's `.parts/` tree) go too, deepest first, never the root.
    for (const dir of [...dirs].sort((a, b) => b.length - a.length)) {
      for (let d = dir; d.startsWith(this.root + sep); d = dirname(d)) {
        if (
          !(await rmdir(d).then(
            () => true,
            () => false,
          ))
        )
          break;
      }
    }
  }

  close(): void {}

  private attempt<T>(fn: () => Promise<T>): Promise<T> {
    return withRetry(this.retry, fn, { signal: this.signal });
  }
}

async function* once(body: Buffer): AsyncIterable<Buffer> {
  yield body;
}

/** Turns "no such file" into `value`; anything else is rethrown. */
function absentAs<T>(value: T): (err: unknown) => T {
  return (err) => {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return value;
    throw err;
  };
}
