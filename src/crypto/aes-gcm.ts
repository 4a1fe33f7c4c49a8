import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

/**
 * AES-256-GCM with a fresh random 96-bit nonce per message, the one cipher joblog
 * uses (chunks under data keys, data keys under the local master key). Sealed
 * form: nonce ‖ ciphertext ‖ 16-byte tag.
 */

export const KEY_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;

/** The message was altered, moved (other additional data) or sealed under another key. */
export class AuthenticationError extends Error {
  override name = "AuthenticationError";
}

/** Seals `plaintext` into `out` at `at` (room for nonce, ciphertext and tag); returns the end. */
export function gcmSealInto(key: Buffer, aad: Buffer, plaintext: Buffer, out: Buffer, at: number): number {
  const nonce = randomBytes(NONCE_BYTES);
  nonce.copy(out, at);
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  cipher.setAAD(aad);
  let end = at + NONCE_BYTES;
  end += cipher.update(plaintext).copy(out, end);
  end += cipher.final().copy(out, end);
  end += cipher.getAuthTag().copy(out, end);
  return end;
}

export function gcmSeal(key: Buffer, aad: Buffer, plaintext: Buffer): Buffer {
  const out = Buffer.allocUnsafe(NONCE_BYTES + plaintext.length + TAG_BYTES);
  gcmSealInto(key, aad, plaintext, out, 0);
  return out;
}

/** Opens nonce ‖ ciphertext ‖ tag; throws AuthenticationError when it does not authenticate. */
export function gcmOpen(key: Buffer, aad: Buffer, sealed: Buffer): Buffer {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new AuthenticationError("sealed message is too short");
  const nonce = sealed.subarray(0, NONCE_BYTES);
  const tag = sealed.subarray(sealed.length - TAG_BYTES);
  const decipher = createDecipheriv("aes-256-gcm", key, nonce);
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  const body = decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES));
  try {
    const last = decipher.final();
    return last.length === 0 ? body : Buffer.concat([body, last]);
  } catch {
    throw new AuthenticationError("authentication failed");
  }
}
