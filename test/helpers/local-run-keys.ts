import { join } from "node:path";
import { LocalKeyProvider } from "../../src/keys/local-key-provider.js";
import { RunKeys, type RunKeysOptions } from "../../src/keys/run-keys.js";
import type { KvStore } from "../../src/store/kv-store.js";

/** Run keys under a local master key in `dir`, as the leader has them by default. */
export async function localRunKeys(kv: KvStore, dir: string, options: Partial<RunKeysOptions> = {}): Promise<RunKeys> {
  const provider = await LocalKeyProvider.open(join(dir, "master.key"), true);
  return new RunKeys(kv, provider, { cacheMaxKeys: 100, cacheMaxAgeMs: 60_000, ...options });
}
