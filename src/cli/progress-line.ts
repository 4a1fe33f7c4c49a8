import type { BackupProgress } from "../backup/backup-progress.js";

export interface ProgressLine {
  update(progress: BackupProgress): void;
  /** Ends the line (a terminal's overwritten line is finished with a newline). */
  done(): void;
}

const MB = 1024 * 1024;

/**
 * Progress on stderr: on a terminal one line rewritten in place a few times a second,
 * otherwise (a log file, CI) a plain line every few seconds.
 */
export function createProgressLine(label: string, out: NodeJS.WriteStream = process.stderr): ProgressLine {
  const tty = out.isTTY === true;
  const everyMs = tty ? 200 : 5_000;
  const started = Date.now();
  let last = 0;
  let drawn = false;
  return {
    update(p) {
      const now = Date.now();
      if (now - last < everyMs && p.phase !== "done") return;
      last = now;
      const seconds = Math.max((now - started) / 1000, 0.001);
      const share = p.totalBytes > 0 ? ` of ${(p.totalBytes / MB).toFixed(1)} MB (${Math.floor((100 * p.bytes) / p.totalBytes)}%)` : "";
      const text = `${label}: ${p.phase}, ${p.files} files, ${p.records} records, ${(p.bytes / MB).toFixed(1)} MB${share}, ${(p.bytes / MB / seconds).toFixed(1)} MB/s`;
      out.write(tty ? `\r\x1b[2K${text}` : `${text}\n`);
      drawn = true;
    },
    done() {
      if (tty && drawn) out.write("\n");
    },
  };
}

/** "12.3 MB in 4.5 s (2.7 MB/s)". */
export function describeThroughput(bytes: number, ms: number): string {
  const seconds = Math.max(ms / 1000, 0.001);
  return `${(bytes / MB).toFixed(1)} MB in ${seconds.toFixed(1)} s (${(bytes / MB / seconds).toFixed(1)} MB/s)`;
}
