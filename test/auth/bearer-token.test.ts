import { expect, test } from "vitest";
import { bearerToken, findByTokenHash, generateToken, hashToken } from "../../src/auth/bearer-token.js";

test("tokens are jl_ and 43 base64url characters (256 random bits), never the same twice", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 100; i++) {
    const token = generateToken();
    expect(token).toMatch(/^jl_[A-Za-z0-9_-]{43}$/);
    seen.add(token);
  }
  expect(seen.size).toBe(100);
});

test("a token is found by its SHA-256 among several entries, and nothing else is", () => {
  const tokens = [generateToken(), generateToken(), generateToken()];
  const entries = tokens.map((t, i) => ({ name: `t${i}`, sha256: hashToken(t) }));
  expect(findByTokenHash(entries, tokens[1] as string)?.name).toBe("t1");
  expect(findByTokenHash(entries, `${tokens[1]}x`)).toBeUndefined();
  expect(findByTokenHash(entries, "")).toBeUndefined();
  expect(findByTokenHash([], tokens[0] as string)).toBeUndefined();
});

test("the Authorization header gives its bearer token; other schemes and malformed values give none", () => {
  expect(bearerToken("Bearer jl_abc")).toBe("jl_abc");
  expect(bearerToken("bearer   jl_abc ")).toBe("jl_abc");
  for (const value of [
    undefined,
    null,
    "",
    "Bearer",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
    "Bearer a b",
    "Bearer jl_abc, Bearer jl_def",
    "Bearer \u00e9",
  ]) {
    expect(bearerToken(value), String(value)).toBeUndefined();
  }
});
