import { pino } from "pino";

/**
 * How the leader reports events: one call, one line. An error marks the event as
 * a failure and travels with it (type, message, stack). Callers pass ids and
 * counts, never the text of a task's lines.
 */
export type LeaderLog = (message: string, err?: unknown) => void;

export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

export interface LeaderLogOptions {
  level: LogLevel;
  /** File descriptor the JSON lines go to (default 2, stderr). */
  fd?: number;
}

/**
 * The leader's own log as pino JSON lines (`{"level":30,"time":"…","msg":"…"}`), so
 * a log shipper parses it without rules. Synchronous writes: the leader logs a few
 * events a minute, and a line written just before a crash must not be lost in a buffer.
 */
export function createLeaderLog(options: LeaderLogOptions): LeaderLog {
  const logger = pino(
    {
      level: options.level,
      base: { pid: process.pid, name: "joblog-leader" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ dest: options.fd ?? 2, sync: true }),
  );
  return (message, err) => {
    if (err === undefined) logger.info(message);
    else logger.error({ err: err instanceof Error ? err : new Error(String(err)) }, message);
  };
}
