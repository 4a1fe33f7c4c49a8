import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface CliOutcome {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `joblog ARGS…` from source to its end (killed after `timeoutMs`), with only
 * PATH, HOME and `env` in its environment, so no JOBLOG_* of the developer's shell leaks in.
 */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): Promise<CliOutcome> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "src/cli/main.ts", ...args],
      { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, timeout: timeoutMs, killSignal: "SIGKILL" },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== "number") reject(new Error(`joblog ${args.join(" ")}: ${err.message}\n${stderr}`));
        else resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
      },
    );
  });
}
