import { spawn } from "node:child_process";
import { constants } from "node:os";
import type { Readable } from "node:stream";
import type { SecretMasker } from "../lines/secret-masker.js";
import { LineSplitter } from "./line-splitter.js";
import { type OutputStream, TaskLogRefusedError, type TaskLogWriter } from "./task-log-writer.js";

const NEWLINE = Buffer.from("\n");

export interface RunCommandOptions {
  writer: TaskLogWriter;
  command: string;
  args: string[];
  maxLineBytes: number;
  /** Also copy the command's output to this process's stdout/stderr. */
  echo: boolean;
  /**
   * Secrets to mask: in each line before it is cut to `maxLineBytes` (the writer
   * masks again, which finds nothing then), and in the echo, which is then written
   * line by line instead of as the raw chunks (a CI console is a log too).
   */
  masker?: SecretMasker | undefined;
  /** Where the worker's own messages go (retries, refusals). */
  report: (message: string) => void;
}

export interface CommandOutcome {
  /** The exit code to exit with: the command's, or 128 + signal number. */
  exitCode: number;
  logComplete: boolean;
}

/**
 * Runs a command with its stdout and stderr streamed line by line into a task
 * log, completes the task with the command's exit code or signal, and returns
 * the code to exit with. When the log buffer is full the pipes are paused, so
 * the command blocks on write instead of the worker dropping or hoarding lines.
 */
export async function runCommand(options: RunCommandOptions): Promise<CommandOutcome> {
  const { writer } = options;
  const child = spawn(options.command, options.args, { stdio: ["inherit", "pipe", "pipe"] });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  let logFailure: unknown;

  const pump = (source: Readable, stream: OutputStream, echo: NodeJS.WriteStream) =>
    new Promise<void>((resolve) => {
      const masker = options.masker;
      const splitter = new LineSplitter(
        options.maxLineBytes,
        (line) => {
          if (masker && options.echo) echo.write(Buffer.concat([line, NEWLINE]));
          if (logFailure) return true;
          try {
            return writer.write(stream, line);
          } catch (err) {
            logFailure = err;
            return true;
          }
        },
        masker,
      );
      source.on("data", (chunk: Buffer) => {
        if (options.echo && !masker) echo.write(chunk);
        if (!splitter.push(chunk)) {
          source.pause();
          writer.ready().then(
            () => source.resume(),
            () => source.resume(),
          );
        }
      });
      source.on("end", () => {
        splitter.end();
        resolve();
      });
      source.on("error", () => resolve());
    });

  const spawnError = new Promise<Error>((resolve) => child.once("error", resolve));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("close", (code, signal) => resolve({ code, signal })),
  );
  const outcome = await Promise.race([
    Promise.all([pump(child.stdout, "stdout", process.stdout), pump(child.stderr, "stderr", process.stderr), exited]).then(([, , e]) => e),
    spawnError.then((err) => ({ error: err })),
  ]);
  process.off("SIGINT", forward);
  process.off("SIGTERM", forward);

  let exitCode: number;
  let signal: string | undefined;
  if ("error" in outcome) {
    const message = `joblog: cannot run ${options.command}: ${(outcome.error as NodeJS.ErrnoException).code ?? outcome.error.message}`;
    options.report(message);
    if (!logFailure) writer.write("stderr", message);
    exitCode = 127;
  } else if (outcome.signal) {
    signal = outcome.signal;
    exitCode = 128 + (constants.signals[outcome.signal] ?? 0);
  } else {
    exitCode = outcome.code ?? 1;
  }

  if (logFailure) return reportRefusal(options, logFailure, exitCode);
  try {
    await writer.complete({
      result: exitCode === 0 ? "succeeded" : "failed",
      exitCode: signal ? -1 : exitCode,
      ...(signal ? { signal } : {}),
    });
  } catch (err) {
    return reportRefusal(options, err, exitCode);
  }
  return { exitCode, logComplete: true };
}

function reportRefusal(options: RunCommandOptions, err: unknown, exitCode: number): CommandOutcome {
  const why = err instanceof TaskLogRefusedError || err instanceof Error ? err.message : String(err);
  options.report(`joblog: the leader refused the log: ${why}`);
  // The command's own failure wins; a clean run whose log was lost still fails.
  return { exitCode: exitCode === 0 ? 1 : exitCode, logComplete: false };
}
