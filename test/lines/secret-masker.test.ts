import { describe, expect, test } from "vitest";
import { MASK, maskForms, SecretMasker } from "../../src/lines/secret-masker.js";

const SECRET = "s3cr3t/Tok+en 42é";
const masked = (masker: SecretMasker, line: string) => Buffer.from(masker.mask(Buffer.from(line))).toString("utf8");

describe("secret masker", () => {
  const masker = SecretMasker.create([SECRET]) as SecretMasker;

  test("the value, its URL-encoded forms and its base64 forms become ***", () => {
    const url = encodeURIComponent(SECRET);
    const b64 = Buffer.from(SECRET).toString("base64");
    for (const form of [
      SECRET,
      url,
      url.replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase()),
      url.replace(/%20/g, "+"),
      b64,
      b64.replace(/=+$/, ""),
    ]) {
      expect(masked(masker, `token=${form};`)).toBe(`token=${MASK};`);
    }
    expect(masked(masker, `x ${b64.replace(/\+/g, "-").replace(/\//g, "_")} y`)).not.toContain(b64.slice(0, 8).replace(/\+/g, "-"));
  });

  test.each([0, 1, 2])("inside a longer base64 string at alignment %i no character that depends only on the secret survives", (shift) => {
    const encoded = Buffer.concat([Buffer.from("user:".slice(0, 3 + shift)), Buffer.from(SECRET), Buffer.from("@host")]).toString("base64");
    const line = masked(masker, `Authorization: Basic ${encoded}`);
    expect(line).toContain(MASK);
    // What is left of the encoding carries at most the secret's first and last few bits.
    const left = line.slice("Authorization: Basic ".length).replace(MASK, "");
    expect(left.length).toBeLessThan(encoded.length - Math.floor((Buffer.byteLength(SECRET) * 8) / 6) + 2);
  });

  test("a line without a secret is returned as the same array; other bytes, invalid UTF-8 included, are kept", () => {
    const plain = Buffer.from("nothing to see here");
    expect(masker.mask(plain)).toBe(plain);
    const raw = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(SECRET), Buffer.from([0xc3])]);
    expect(Buffer.from(masker.mask(raw))).toEqual(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(MASK), Buffer.from([0xc3])]));
  });

  test("longest form wins: a whole base64 value leaves no fragment", () => {
    const b64 = Buffer.from(SECRET).toString("base64");
    expect(masked(masker, b64)).toBe(MASK);
  });

  test("no masks: no masker; a value under 4 bytes is refused naming its entry, not the value", () => {
    expect(SecretMasker.create([])).toBeUndefined();
    expect(() => SecretMasker.create(["long-enough", "abc"], "--mask")).toThrow(
      /--mask\[1\] is 3 bytes long; a mask must be at least 4 bytes/,
    );
    try {
      SecretMasker.create(["xyz"]);
    } catch (err) {
      expect((err as Error).message).not.toContain("xyz");
    }
  });

  test("masks over 64 KiB in all are refused without quoting any of them", () => {
    const big = Array.from({ length: 20 }, (_, i) => `${i}`.padEnd(4000, "k"));
    expect(() => SecretMasker.create(big)).toThrow(/hold 80000 bytes in all; the limit is 65536/);
  });

  test("forms shorter than 4 characters are not masked on their own", () => {
    for (const form of maskForms("abcd")) expect(form.length).toBeGreaterThanOrEqual(4);
  });
});
