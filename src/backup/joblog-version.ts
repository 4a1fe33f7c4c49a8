import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

let cached: string | undefined;

/** joblog's version from its package.json (found above this module, from src/ or dist/src/). */
export function joblogVersion(): string {
  if (cached !== undefined) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6 && cached === undefined; i++, dir = dirname(dir)) {
    const file = join(dir, "package.json");
    if (existsSync(file)) cached = String((JSON.parse(readFileSync(file, "utf8")) as { version?: unknown }).version ?? "unknown");
  }
  cached ??= "unknown";
  return cached;
}
