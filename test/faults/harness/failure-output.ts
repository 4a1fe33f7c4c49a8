import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeEach } from "vitest";
import { LeaderProcess } from "./leader-process.js";

/** RocksDB's LOG files of a leader (written at warn level, so short; a reopen starts a new one), last lines of each. */
async function rocksdbLogs(dataDir: string): Promise<string> {
  let out = "";
  for (const store of ["joblogs", "meta"]) {
    const files = (await readdir(join(dataDir, store)).catch(() => [])).filter((f) => f.startsWith("LOG")).sort();
    for (const file of files) {
      const lines = (await readFile(join(dataDir, store, file), "utf8").catch(() => "")).trimEnd().split("\n");
      if (lines.length > 0 && lines[0] !== "") out += `--- ${store}/${file} (last 40 lines) ---\n${lines.slice(-40).join("\n")}\n`;
    }
  }
  return out;
}

/**
 * When a scenario fails, the leaders' own logs say why (a retry that gave up, a store
 * that never wrote again); the test's error alone rarely does, and CI keeps nothing else.
 */
beforeEach(({ onTestFailed }) => {
  onTestFailed(async () => {
    for (const leader of LeaderProcess.all) {
      process.stderr.write(
        `--- the last stderr of leader process ${leader.pid ?? "(not running)"} (start ${leader.starts}) ---\n${leader.stderr}\n${await rocksdbLogs(leader.dataDir)}`,
      );
    }
  });
});
