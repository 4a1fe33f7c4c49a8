import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext } from "@connectrpc/connect";
import { type BackupRequest, type BackupResponse, BackupResponseSchema } from "../../gen/joblog/v1/admin_pb.js";
import type { BackupProgress } from "../backup/backup-progress.js";
import { type BackupTarget, openBackupTarget } from "../backup/backup-target.js";
import { backupLiveStores, type LiveStores } from "../backup/store-backup.js";
import { BackupTargetNotEmptyError } from "../backup/write-backup.js";
import { DomainError, failedPrecondition, invalidArgument, unavailable } from "../errors/domain-error.js";
import { toConnectError } from "./error-mapping.js";

export interface BackupHandlerDeps {
  stores: LiveStores;
  /** Aborted when the leader stops: a backup in progress ends and deletes what it wrote. */
  shutdown: AbortSignal;
  log: (message: string, err?: unknown) => void;
}

/** Bounds of a data file's size: a few KiB keeps tests small; S3 takes objects up to 5 TiB, 4 GiB keeps a file's check short. */
const MIN_PART_BYTES = 4096;
const MAX_PART_BYTES = 4 * 1024 ** 3;

/** Progress messages go out at most this often; the backup itself never waits for the client. */
const PROGRESS_INTERVAL_MS = 250;

/** AdminService.Backup: runs an online backup and streams its progress, then its summary. */
export async function* handleBackup(
  deps: BackupHandlerDeps,
  request: BackupRequest,
  context: HandlerContext,
): AsyncGenerator<BackupResponse> {
  const abort = new AbortController();
  const signal = AbortSignal.any([abort.signal, context.signal, deps.shutdown]);
  let target: BackupTarget;
  try {
    if (request.target === "") throw invalidArgument("target is required: a directory on the leader's machine or s3://bucket/prefix");
    if (!request.target.startsWith("s3://") && !request.target.startsWith("/")) {
      throw invalidArgument(`target ${request.target} must be an absolute directory on the leader's machine or s3://bucket/prefix`);
    }
    if (request.partBytes !== 0n && (request.partBytes < BigInt(MIN_PART_BYTES) || request.partBytes > BigInt(MAX_PART_BYTES))) {
      throw invalidArgument(
        `part_bytes must be 0 (the default) or between ${MIN_PART_BYTES} and ${MAX_PART_BYTES}, not ${request.partBytes}`,
      );
    }
    try {
      // Without the abort signal: a cancelled backup still needs the target to delete what it wrote.
      // It stops at its next piece (1 MiB) instead.
      target = openBackupTarget(request.target, { s3: { endpoint: request.s3Endpoint, region: request.s3Region } });
    } catch (err) {
      throw invalidArgument(`target: ${(err as Error).message}`);
    }
  } catch (err) {
    throw toConnectError(err, deps.log);
  }
  let latest: BackupProgress | undefined;
  let fresh = false;
  let settled = false;
  deps.log(`backup to ${target.description} started`);
  const running = backupLiveStores(deps.stores, target, {
    ...(request.partBytes > 0n && { partBytes: Number(request.partBytes) }),
    onProgress: (p) => {
      latest = p;
      fresh = true;
    },
    signal,
  });
  let wake: (() => void) | undefined;
  const ended = running.finally(() => {
    settled = true;
    wake?.();
  });
  ended.catch(() => {});
  try {
    while (!settled) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, PROGRESS_INTERVAL_MS).unref();
      });
      if (fresh && !settled && latest) {
        fresh = false;
        yield progressMessage(latest);
      }
    }
    const manifest = await running;
    deps.log(`backup to ${target.description} finished: ${manifest.totals.files} files, ${manifest.totals.bytes} bytes`);
    yield create(BackupResponseSchema, {
      phase: "done",
      files: BigInt(manifest.totals.files),
      bytes: BigInt(manifest.totals.bytes),
      records: BigInt(manifest.totals.records),
      summary: {
        target: target.description,
        createdAt: timestampFromDate(new Date(manifest.created_at)),
        files: BigInt(manifest.totals.files),
        records: BigInt(manifest.totals.records),
        bytes: BigInt(manifest.totals.bytes),
        keyIds: manifest.key_ids,
      },
    });
  } catch (err) {
    throw toConnectError(backupError(err, target, deps), deps.log);
  } finally {
    abort.abort();
    await ended.catch(() => {});
    target.backend.close();
  }
}

function progressMessage(p: BackupProgress): BackupResponse {
  return create(BackupResponseSchema, { phase: p.phase, files: BigInt(p.files), bytes: BigInt(p.bytes), records: BigInt(p.records) });
}

/** What the operator can act on: a full target, an unreachable one, a stopping leader. */
function backupError(err: unknown, target: BackupTarget, deps: BackupHandlerDeps): unknown {
  if (err instanceof DomainError) return err;
  if (err instanceof BackupTargetNotEmptyError) return failedPrecondition(err.message);
  if (deps.shutdown.aborted)
    return unavailable(`the leader is stopping; the backup to ${target.description} was abandoned and its files deleted`);
  deps.log(`backup to ${target.description} failed`, err);
  return unavailable(`the backup to ${target.description} failed: ${err instanceof Error ? err.message : String(err)}`);
}
