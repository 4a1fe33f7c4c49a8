import { generateToken, hashToken } from "../../src/auth/bearer-token.js";
import type { LeaderClientOptions } from "../../src/client/leader-client.js";
import type { TokenConfig } from "../../src/config/config-schema.js";
import { TaskLogWriter } from "../../src/worker/task-log-writer.js";

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

/**
 * Writes `lines` to a task through `TaskLogWriter` with the given connection (token, TLS),
 * then completes the task, or with `keepOpen` only waits until they are durable.
 */
export async function pushWith(
  leader: string,
  connection: LeaderClientOptions,
  target: { runId: string; task?: string; workspace?: string },
  lines: readonly string[],
  options: { keepOpen?: boolean } = {},
): Promise<void> {
  const writer = TaskLogWriter.open({
    leader,
    connection,
    runId: target.runId,
    task: target.task ?? "build",
    ...(target.workspace && { workspace: target.workspace }),
    settings: { batchMaxIntervalMs: 5 },
  });
  for (const line of lines) writer.write("stdout", line);
  if (options.keepOpen) {
    await writer.flush();
    await writer.close();
  } else {
    await writer.complete({ result: "succeeded", exitCode: 0 });
  }
}
