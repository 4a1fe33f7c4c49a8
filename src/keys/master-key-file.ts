import { createHash, randomBytes } from "node:crypto";
import { open, rename } from "node:fs/promises";
import { dirname } from "node:path";
import { KEY_BYTES } from "../crypto/aes-gcm.js";

/**
 * The local key provider's master keys, in one small text file (by default
 * `DATA/master.key`, mode 0600):
 *
 *     joblog-master-key v1
 *     current <id>
 *     key <id> <base64 of 32 bytes>
 *
 * Usually one key; during a rotation the previous ones stay until every data key
 * is re-wrapped. An id is derived from its key, so a mismatched id is caught.
 * The file is replaced atomically (write, fsync, rename), never edited in place.
 */

const HEADER = "joblog-master-key v1";

export interface MasterKeyring {
  current: string;
  keys: Map<string, Buffer>;
}

export class MasterKeyFileError extends Error {
  override name = "MasterKeyFileError";
}

export function masterKeyId(key: Buffer): string {
  return createHash("sha256").update("joblog master key id\0").update(key).digest("hex").slice(0, 16);
}

export function newMasterKey(): Buffer {
  return randomBytes(KEY_BYTES);
}

export function formatKeyring(ring: MasterKeyring): string {
  const lines = [HEADER, `current ${ring.current}`];
  for (const [id, key] of ring.keys) lines.push(`key ${id} ${key.toString("base64")}`);
  return `${lines.join("\n")}\n`;
}

export function parseKeyring(text: string, path: string): MasterKeyring {
  const bad = (line: number, why: string) => new MasterKeyFileError(`${path} is malformed (line ${line}): ${why}`);
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  if (lines[0] !== HEADER) throw bad(1, `expected "${HEADER}"`);
  const currentMatch = /^current ([0-9a-f]{16})$/.exec(lines[1] ?? "");
  if (!currentMatch?.[1]) throw bad(2, 'expected "current <16 hex digits>"');
  const keys = new Map<string, Buffer>();
  for (const [i, line] of lines.slice(2).entries()) {
    const m = /^key ([0-9a-f]{16}) ([A-Za-z0-9+/]+={0,2})$/.exec(line);
    if (!m?.[1] || !m[2]) throw bad(i + 3, 'expected "key <id> <base64>"');
    const key = Buffer.from(m[2], "base64");
    if (key.length !== KEY_BYTES) throw bad(i + 3, `a master key is ${KEY_BYTES * 8} bits, this one is ${key.length * 8}`);
    if (masterKeyId(key) !== m[1]) throw bad(i + 3, `key ${m[1]} does not match its id`);
    keys.set(m[1], key);
  }
  if (!keys.has(currentMatch[1])) throw bad(2, `current key ${currentMatch[1]} is not in the file`);
  return { current: currentMatch[1], keys };
}

/** Reads the keyring, refusing a file that group or others may read or write. Undefined when it does not exist. */
export async function readKeyring(path: string): Promise<MasterKeyring | undefined> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new MasterKeyFileError(`cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new MasterKeyFileError(`${path} is not a regular file`);
    if ((info.mode & 0o077) !== 0) {
      const mode = (info.mode & 0o777).toString(8).padStart(4, "0");
      throw new MasterKeyFileError(`${path} is accessible to other users (mode ${mode}); it must be 0600: chmod 600 ${path}`);
    }
    return parseKeyring(await handle.readFile("utf8"), path);
  } finally {
    await handle.close();
  }
}

/** Writes the keyring atomically with mode 0600: a crash leaves the old file or the new one. */
export async function writeKeyring(path: string, ring: MasterKeyring): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const handle = await open(tmp, "w", 0o600);
  try {
    await handle.writeFile(formatKeyring(ring));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
  await syncDir(dirname(path));
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
