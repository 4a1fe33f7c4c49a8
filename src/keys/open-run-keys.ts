import { join } from "node:path";
import type { EncryptionConfig } from "../config/config-schema.js";
import type { KvStore } from "../store/kv-store.js";
import { AwsKeyProvider } from "./aws-key-provider.js";
import type { KeyProvider } from "./key-provider.js";
import { LocalKeyProvider } from "./local-key-provider.js";
import { hasStoredDataKeys, type KeyOutage, RunKeys } from "./run-keys.js";

export interface OpenRunKeysOptions {
  onOutageEnded?: (run: string, outage: KeyOutage) => void;
}

/** The key provider the configuration names, with the run keys of the log store `kv`. */
export async function openRunKeys(
  config: EncryptionConfig,
  dataDir: string,
  kv: KvStore,
  options: OpenRunKeysOptions = {},
): Promise<{ keys: RunKeys; close(): void }> {
  const settings = {
    cacheMaxKeys: config.data_key_cache_max_keys,
    cacheMaxAgeMs: config.data_key_cache_max_age_seconds * 1000,
    ...(options.onOutageEnded ? { onOutageEnded: options.onOutageEnded } : {}),
  };
  let provider: KeyProvider;
  let close = () => {};
  if (config.provider === "aws") {
    const aws = new AwsKeyProvider({
      keyId: config.aws.key_id,
      region: config.aws.region || undefined,
      endpoint: config.aws.endpoint || undefined,
      timeoutMs: config.aws.timeout_ms,
    });
    provider = aws;
    close = () => aws.close();
  } else {
    const file = config.master_key_file || join(dataDir, "master.key");
    provider = await LocalKeyProvider.open(file, !(await hasStoredDataKeys(kv)));
  }
  return { keys: new RunKeys(kv, provider, settings), close };
}
