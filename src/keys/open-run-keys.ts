import { join } from "node:path";
import type { EncryptionConfig } from "../config/config-schema.js";
import type { KvStore } from "../store/kv-store.js";
import type { KmsCallOutcome } from "./aws-key-provider.js";
import type { KeyProvider } from "./key-provider.js";
import { LocalKeyProvider } from "./local-key-provider.js";
import { hasStoredDataKeys, type KeyOutage, RunKeys } from "./run-keys.js";

export interface OpenRunKeysOptions {
  onOutageEnded?: (run: string, outage: KeyOutage) => void;
  /** Told of every KMS call's outcome (metrics); the local provider makes none. */
  onKmsCall?: (operation: string, outcome: KmsCallOutcome) => void;
}

/** The key provider the configuration names, with the run keys of the log store `kv`. */
export async function openRunKeys(
  config: EncryptionConfig,
  dataDir: string,
  kv: KvStore,
  options: OpenRunKeysOptions = {},
): Promise<{ keys: RunKeys; close(): void; probe?: (signal: AbortSignal) => Promise<void> }> {
  const settings = {
    cacheMaxKeys: config.data_key_cache_max_keys,
    cacheMaxAgeMs: config.data_key_cache_max_age_seconds * 1000,
    ...(options.onOutageEnded ? { onOutageEnded: options.onOutageEnded } : {}),
  };
  const { provider, close, probe } = await openKeyProvider(config, dataDir, async () => !(await hasStoredDataKeys(kv)), options.onKmsCall);
  return { keys: new RunKeys(kv, provider, settings), close, ...(probe ? { probe } : {}) };
}

/**
 * The key provider the configuration names. A local master key file is created only
 * when `mayCreate` says so (a store with no data keys yet): otherwise a missing file
 * is an error naming it.
 */
export async function openKeyProvider(
  config: EncryptionConfig,
  dataDir: string,
  mayCreate: () => Promise<boolean>,
  onKmsCall?: (operation: string, outcome: KmsCallOutcome) => void,
): Promise<{ provider: KeyProvider; close(): void; probe?: (signal: AbortSignal) => Promise<void> }> {
  if (config.provider === "aws") {
    // Loaded only when configured: @aws-sdk/client-kms is a large part of the program's memory and start.
    const { AwsKeyProvider } = await import("./aws-key-provider.js");
    const aws = new AwsKeyProvider({
      keyId: config.aws.key_id,
      region: config.aws.region || undefined,
      endpoint: config.aws.endpoint || undefined,
      timeoutMs: config.aws.timeout_ms,
      onCall: onKmsCall,
    });
    return { provider: aws, close: () => aws.close(), probe: (signal) => aws.probe(signal) };
  }
  const file = config.master_key_file || join(dataDir, "master.key");
  return { provider: await LocalKeyProvider.open(file, await mayCreate()), close: () => {} };
}
