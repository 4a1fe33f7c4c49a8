import { resolve } from "node:path";
import type { ArchiveBackend } from "../archive/archive-backend.js";
import { LazyS3Backend } from "../archive/lazy-s3-backend.js";
import { LocalBackend } from "../archive/local-backend.js";

/** Where a backup is written or read: a directory, or an S3 bucket and prefix. */
export interface BackupTarget {
  /** The backup's objects are `prefix + name`. */
  backend: ArchiveBackend;
  prefix: string;
  /** For messages: the directory or `s3://bucket/prefix`, never credentials. */
  description: string;
}

/** How to reach S3; anything not given comes from the standard AWS environment and credential chain. */
export interface S3Access {
  endpoint?: string | undefined;
  region?: string | undefined;
}

export interface OpenTargetOptions {
  s3?: S3Access;
  signal?: AbortSignal;
}

// Archive backends retry each request; a backup is one long operation an operator watches, so a few tries suffice.
const RETRY = { attempts: 5, initialMs: 200, maxMs: 5_000 };
const REQUEST_TIMEOUT_MS = 120_000;

/** Parses `s3://bucket/prefix`; the prefix gets a trailing slash so names stay below it. */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!match?.[1] || match[1].length < 3)
    throw new Error(`${url}: an S3 target is s3://BUCKET/PREFIX with a bucket name of 3 or more characters`);
  const path = match[2] ?? "";
  return { bucket: match[1], prefix: path === "" || path.endsWith("/") ? path : `${path}/` };
}

/**
 * Opens a backup target: `s3://bucket/prefix` through @aws-sdk/client-s3 (endpoint and
 * region from `access`, else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL and AWS_REGION;
 * credentials from the AWS chain), anything else a directory.
 */
export function openBackupTarget(location: string, options: OpenTargetOptions = {}): BackupTarget {
  if (location === "") throw new Error("a backup target is required: a directory or s3://bucket/prefix");
  const signal = options.signal ?? new AbortController().signal;
  if (!location.startsWith("s3://")) {
    const root = resolve(location);
    return { backend: new LocalBackend(root, RETRY, signal), prefix: "", description: root };
  }
  const { bucket, prefix } = parseS3Url(location);
  const env = process.env;
  const endpoint = options.s3?.endpoint || env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  // S3-compatible stores ignore the region but the SDK insists on one.
  const region = options.s3?.region || env.AWS_REGION || env.AWS_DEFAULT_REGION || (endpoint !== undefined ? "us-east-1" : undefined);
  const backend = new LazyS3Backend(
    { type: "s3", bucket, prefix, region, endpoint, forcePathStyle: endpoint !== undefined, credentials: undefined, sse: undefined },
    { retry: RETRY, requestTimeoutMs: REQUEST_TIMEOUT_MS, signal },
  );
  return { backend, prefix, description: `s3://${bucket}/${prefix}` };
}
