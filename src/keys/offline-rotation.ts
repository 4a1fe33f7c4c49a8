import { join, resolve } from "node:path";
import type { JoblogConfig } from "../config/config-schema.js";
import { KvStore } from "../store/kv-store.js";
import { openRunKeys } from "./open-run-keys.js";

/**
 * Key rotation on a data directory whose leader is stopped: the same re-wrapping
 * the leader's RotateKeys does, on the log store opened directly. The store's
 * lock refuses this while a leader holds the directory.
 */
export async function rotateKeysOffline(config: JoblogConfig): Promise<{ rewrapped: number; unchanged: number; provider: string }> {
  const dataDir = resolve(config.server.data_dir);
  const kv = await KvStore.open(join(dataDir, "joblogs"), { compression: false });
  try {
    const { keys, close } = await openRunKeys(config.encryption, dataDir, kv);
    try {
      return { ...(await keys.rotate()), provider: keys.provider.description };
    } finally {
      close();
    }
  } finally {
    await kv.close();
  }
}
