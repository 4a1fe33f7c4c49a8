import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Bearer tokens: 32 random bytes (256 bits) as base64url after a `jl_` prefix
 * (the prefix lets secret scanners and people recognise one).
 *
 * The config holds only SHA-256 of each token. A fast hash is enough here, unlike
 * for passwords: a slow KDF (bcrypt, argon2) exists to make guessing low-entropy
 * secrets expensive, but guessing a 256-bit random value is hopeless at any hash
 * speed, and a KDF would cost every request milliseconds of CPU.
 */

const TOKEN_PREFIX = "jl_";

/** A new random token. */
export function generateToken(): string {
  return `${TOKEN_PREFIX}${randomBytes(32).toString("base64url")}`;
}

/** Hex SHA-256 of a token: the form the config stores. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/**
 * Finds the entry whose hash matches `token`. Every entry is compared, in
 * constant time, so the time taken says nothing about how close a guess was.
 */
export function findByTokenHash<T extends { sha256: string }>(entries: readonly T[], token: string): T | undefined {
  const presented = createHash("sha256").update(token, "utf8").digest();
  let found: T | undefined;
  for (const entry of entries) {
    if (timingSafeEqual(presented, Buffer.from(entry.sha256, "hex")) && found === undefined) found = entry;
  }
  return found;
}

/** The token of an `Authorization: Bearer …` header value; undefined when absent or another scheme. */
export function bearerToken(authorization: string | null | undefined): string | undefined {
  if (!authorization) return undefined;
  const match = /^Bearer[ ]+([\x21-\x7e]+)[ ]*$/i.exec(authorization);
  return match?.[1];
}
