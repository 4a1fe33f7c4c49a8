import { randomBytes } from "node:crypto";
import { AuthenticationError, gcmOpen, gcmSeal, KEY_BYTES } from "../crypto/aes-gcm.js";
import { type EncryptionContext, type GeneratedKey, KeyAccessError, type KeyProvider, type WrappedKey } from "./key-provider.js";
import { type MasterKeyring, masterKeyId, newMasterKey, readKeyring, writeKeyring } from "./master-key-file.js";

/** Additional data of a wrapped key: the wrapped key only unwraps for its own run. */
function wrapAad(context: EncryptionContext): Buffer {
  return Buffer.from(`joblog data key\0${context.workspace}\0${context.run}`, "utf8");
}

/**
 * The embedded default: data keys wrapped with AES-256-GCM under a master key
 * from a local file. Whoever copies the data directory without that file gets
 * ciphertext only — keep the file elsewhere in backups.
 */
export class LocalKeyProvider implements KeyProvider {
  readonly description: string;

  private constructor(
    private readonly path: string,
    private ring: MasterKeyring,
  ) {
    this.description = `local master key ${path}`;
  }

  /**
   * Opens the key file, creating it when `mayCreate` (a store with no data keys
   * yet). A missing file beside stored data keys is refused: a fresh key would
   * silently make every existing log unreadable.
   */
  static async open(path: string, mayCreate: boolean): Promise<LocalKeyProvider> {
    const ring = await readKeyring(path);
    if (ring) return new LocalKeyProvider(path, ring);
    if (!mayCreate) {
      throw new KeyAccessError(
        `the master key file ${path} is missing, but the log store holds data keys wrapped by a local master key; restore the file from your backup`,
      );
    }
    const key = newMasterKey();
    const id = masterKeyId(key);
    const created = { current: id, keys: new Map([[id, key]]) };
    await writeKeyring(path, created);
    return new LocalKeyProvider(path, created);
  }

  async generateDataKey(context: EncryptionContext): Promise<GeneratedKey> {
    const plaintext = randomBytes(KEY_BYTES);
    return { plaintext, ...this.wrap(plaintext, context) };
  }

  async unwrap(key: WrappedKey, context: EncryptionContext): Promise<Buffer> {
    const master = this.ring.keys.get(key.keyId);
    if (!master) {
      throw new KeyAccessError(
        `the data key of run ${context.run} was wrapped by master key ${key.keyId}, which is not in ${this.path} (holds ${[...this.ring.keys.keys()].join(", ")})`,
      );
    }
    try {
      return gcmOpen(master, wrapAad(context), key.wrapped);
    } catch (err) {
      if (err instanceof AuthenticationError) {
        throw new KeyAccessError(`the wrapped data key of run ${context.run} does not authenticate under master key ${key.keyId}`);
      }
      throw err;
    }
  }

  async rewrap(key: WrappedKey, context: EncryptionContext): Promise<WrappedKey | undefined> {
    if (key.keyId === this.ring.current) return undefined;
    return this.wrap(await this.unwrap(key, context), context);
  }

  async beginRotation(): Promise<void> {
    const key = newMasterKey();
    const id = masterKeyId(key);
    // The new key first, the old ones after it: they keep unwrapping until finishRotation.
    const next = { current: id, keys: new Map([[id, key], ...this.ring.keys]) };
    await writeKeyring(this.path, next);
    this.ring = next;
  }

  async finishRotation(): Promise<void> {
    const current = this.ring.keys.get(this.ring.current) as Buffer;
    const next = { current: this.ring.current, keys: new Map([[this.ring.current, current]]) };
    await writeKeyring(this.path, next);
    this.ring = next;
  }

  private wrap(plaintext: Buffer, context: EncryptionContext): WrappedKey {
    const master = this.ring.keys.get(this.ring.current) as Buffer;
    return { keyId: this.ring.current, wrapped: gcmSeal(master, wrapAad(context), plaintext) };
  }
}
