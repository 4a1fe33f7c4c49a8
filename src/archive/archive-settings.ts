import type { LogStorageConfig } from "../config/config-schema.js";

/** Where archive objects go, resolved from `log_storage` (the `archive` block wins over the legacy `s3`). */
export type ArchiveTarget = S3Target | LocalTarget;

export interface S3Target {
  type: "s3";
  bucket: string;
  region: string | undefined;
  prefix: string;
  endpoint: string | undefined;
  forcePathStyle: boolean;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
  sse: { type: "AES256" } | { type: "aws:kms"; kmsKeyId: string | undefined } | undefined;
}

export interface LocalTarget {
  type: "local";
  path: string;
  prefix: string;
}

type S3Block = NonNullable<LogStorageConfig["s3"]>;

/** The archive to use, or undefined when none is configured (RocksDB then keeps every log). */
export function archiveTarget(config: LogStorageConfig): ArchiveTarget | undefined {
  const { archive, s3 } = config;
  if (archive?.type === "local") return { type: "local", path: archive.path ?? "", prefix: archive.prefix };
  if (archive?.type === "s3") return s3Target({ ...archive, bucket: archive.bucket ?? "" });
  if (s3) return s3Target(s3);
  return undefined;
}

function s3Target(block: S3Block): S3Target {
  const credentials =
    block.access_key_id !== undefined && block.secret_access_key !== undefined
      ? {
          accessKeyId: block.access_key_id,
          secretAccessKey: block.secret_access_key,
          ...(block.session_token !== undefined && { sessionToken: block.session_token }),
        }
      : undefined;
  const sse =
    block.sse === "AES256"
      ? ({ type: "AES256" } as const)
      : block.sse === "aws:kms"
        ? ({ type: "aws:kms", kmsKeyId: block.kms_key_id } as const)
        : undefined;
  return {
    type: "s3",
    bucket: block.bucket,
    // S3-compatible stores ignore the region but the SDK insists on one.
    region: block.region ?? (block.endpoint !== undefined ? "us-east-1" : undefined),
    prefix: block.prefix,
    endpoint: block.endpoint,
    forcePathStyle: block.force_path_style ?? block.endpoint !== undefined,
    credentials,
    sse,
  };
}

/** How a target is named in messages: never with credentials. */
export function describeTarget(target: ArchiveTarget): string {
  return target.type === "s3" ? `s3://${target.bucket}/${target.prefix}` : `${target.path}/${target.prefix}`;
}
