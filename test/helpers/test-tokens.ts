import { generateToken, hashToken } from "../../src/auth/bearer-token.js";
import type { TokenConfig } from "../../src/config/config-schema.js";

/** Tokens for each role and scope the auth tests exercise: the plaintext by name, and the config entries. */
export function makeTestTokens() {
  const specs = {
    admin: { role: "admin" },
    worker: { role: "worker" },
    workerCi: { role: "worker", workspaces: ["ci"] },
    workerRun: { role: "worker", run: "only-run" },
    reader: { role: "reader" },
    readerCi: { role: "reader", workspaces: ["ci"] },
    readerTwo: { role: "reader", workspaces: ["ci", "ops"] },
  } as const;
  const plain = {} as Record<keyof typeof specs, string>;
  const entries: TokenConfig[] = [];
  for (const [name, spec] of Object.entries(specs) as Array<[keyof typeof specs, (typeof specs)[keyof typeof specs]]>) {
    plain[name] = generateToken();
    entries.push({ name, sha256: hashToken(plain[name]), ...spec } as TokenConfig);
  }
  return { plain, entries };
}
