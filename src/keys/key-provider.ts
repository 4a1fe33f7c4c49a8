/**
 * Where data keys come from. A provider generates a data key (DEK) for a run and
 * wraps it under a master key it holds (a local key file, or AWS KMS); joblog
 * stores only the wrapped form. The encryption context binds a wrapped key to its
 * run, so a wrapped key copied to another run does not unwrap.
 */

export interface EncryptionContext {
  workspace: string;
  run: string;
}

export interface WrappedKey {
  /** The master key that wrapped it: a local key id, or a KMS key ARN. */
  keyId: string;
  wrapped: Buffer;
}

export interface GeneratedKey extends WrappedKey {
  plaintext: Buffer;
}

export interface KeyProvider {
  /** For messages: "local master key", "AWS KMS key alias/x". */
  readonly description: string;
  generateDataKey(context: EncryptionContext): Promise<GeneratedKey>;
  unwrap(key: WrappedKey, context: EncryptionContext): Promise<Buffer>;
  /** Wraps a key again under the current master key; undefined when it already is. */
  rewrap(key: WrappedKey, context: EncryptionContext): Promise<WrappedKey | undefined>;
  /** Called before re-wrapping every stored key: from here on new keys use the new master key. */
  beginRotation(): Promise<void>;
  /** Called once every stored key is re-wrapped: previous master keys may go. */
  finishRotation(): Promise<void>;
}

/** The provider could not be reached or timed out; retrying later may work. */
export class KeyUnavailableError extends Error {
  override name = "KeyUnavailableError";
}

/** The provider refused: wrong key, access denied, corrupt wrapped key. Retrying does not help. */
export class KeyAccessError extends Error {
  override name = "KeyAccessError";
}
