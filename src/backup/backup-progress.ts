/** Where a backup, restore or verify is, reported as it goes. */
export interface BackupProgress {
  phase: "snapshot" | "copy" | "verify" | "restore" | "done";
  /** Files finished so far. */
  files: number;
  /** Bytes of backup data written or read so far. */
  bytes: number;
  /** Store entries copied so far. */
  records: number;
  /** Bytes of the whole backup when known (restore, verify), else 0. */
  totalBytes: number;
}

export type ProgressListener = (progress: BackupProgress) => void;
