import { createHash } from "node:crypto";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { type ArchiveBackend, ArchiveVerifyError, type ObjectDigest } from "./archive-backend.js";
import type { S3Target } from "./archive-settings.js";
import { COPY_STEP_RETRY, type RetryPolicy, withRetry } from "./request-retry.js";

/** Streamed uploads go in parts of this size (S3's minimum is 5 MiB for all but the last). */
const PART_BYTES = 8 * 1024 * 1024;
const MD5_META = "joblog-md5";

export interface S3BackendOptions {
  retry: RetryPolicy;
  requestTimeoutMs: number;
  /** Aborted when the leader stops: requests in flight and waits between tries end at once. */
  signal: AbortSignal;
}

/**
 * The `s3` backend over @aws-sdk/client-s3: AWS S3 or any S3-compatible store.
 * Every request is retried here with backoff (the SDK's own retries are off, so
 * there is one policy), uploads carry Content-MD5 so the store refuses a body
 * damaged on the way, and reads always send explicit `bytes=start-end` ranges.
 */
export class S3Backend implements ArchiveBackend {
  readonly description: string;
  private readonly client: S3Client;
  private readonly abort: { abortSignal: AbortSignal };
  private readonly sse: { ServerSideEncryption?: "AES256" | "aws:kms"; SSEKMSKeyId?: string };

  constructor(
    private readonly target: S3Target,
    private readonly options: S3BackendOptions,
  ) {
    this.description = `s3://${target.bucket}/${target.prefix}`;
    this.abort = { abortSignal: options.signal };
    this.client = new S3Client({
      ...(target.region !== undefined && { region: target.region }),
      ...(target.endpoint !== undefined && { endpoint: target.endpoint }),
      forcePathStyle: target.forcePathStyle,
      ...(target.credentials !== undefined && { credentials: target.credentials }),
      maxAttempts: 1,
      // Only checksums S3 requires: the default CRC32 trailers (aws-chunked) are not
      // understood by every S3-compatible store; integrity comes from Content-MD5.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      requestHandler: {
        connectionTimeout: Math.min(options.requestTimeoutMs, 10_000),
        requestTimeout: options.requestTimeoutMs,
        // Without it the SDK only warns about a request past its timeout and keeps waiting on it.
        throwOnRequestTimeout: true,
      },
    });
    this.sse =
      target.sse === undefined
        ? {}
        : target.sse.type === "AES256"
          ? { ServerSideEncryption: "AES256" }
          : { ServerSideEncryption: "aws:kms", ...(target.sse.kmsKeyId !== undefined && { SSEKMSKeyId: target.sse.kmsKeyId }) };
  }

  async put(key: string, body: Buffer): Promise<ObjectDigest> {
    const md5 = createHash("md5").update(body).digest();
    await this.send(() =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.target.bucket,
          Key: key,
          Body: body,
          ContentLength: body.length,
          ContentMD5: md5.toString("base64"),
          Metadata: { [MD5_META]: md5.toString("hex") },
          ...this.sse,
        }),
        this.abort,
      ),
    );
    return { size: body.length, md5: md5.toString("hex") };
  }

  async putStream(key: string, pieces: AsyncIterable<Buffer>): Promise<ObjectDigest> {
    const whole = createHash("md5");
    const partMd5s: string[] = [];
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let size = 0;
    let uploadId: string | undefined;
    const etags: string[] = [];
    const upload = async (part: Buffer) => {
      const md5 = createHash("md5").update(part).digest();
      partMd5s.push(md5.toString("hex"));
      const id = uploadId as string;
      const partNumber = etags.length + 1;
      // A part that fails loses the whole upload: it gets the patience of a copy step.
      const res = await this.sendStep(() =>
        this.client.send(
          new UploadPartCommand({
            Bucket: this.target.bucket,
            Key: key,
            UploadId: id,
            PartNumber: partNumber,
            Body: part,
            ContentLength: part.length,
            ContentMD5: md5.toString("base64"),
          }),
          this.abort,
        ),
      );
      etags.push(res.ETag ?? "");
    };
    try {
      for await (const piece of pieces) {
        whole.update(piece);
        size += piece.length;
        pending.push(piece);
        pendingBytes += piece.length;
        if (pendingBytes < PART_BYTES) continue;
        if (uploadId === undefined) uploadId = await this.createUpload(key);
        const part = Buffer.concat(pending, pendingBytes);
        pending = [];
        pendingBytes = 0;
        await upload(part);
      }
      const md5 = whole.digest("hex");
      if (uploadId === undefined) {
        // Small enough for one request; the MD5 metadata below is then exact.
        await this.put(key, Buffer.concat(pending, pendingBytes));
        return { size, md5 };
      }
      if (pendingBytes > 0) await upload(Buffer.concat(pending, pendingBytes));
      const id = uploadId;
      await this.sendStep(() =>
        this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.target.bucket,
            Key: key,
            UploadId: id,
            MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
          }),
          this.abort,
        ),
      );
      return { size, md5, partMd5s };
    } catch (err) {
      if (uploadId !== undefined) {
        const id = uploadId;
        // Parts of an abandoned upload are billed until aborted; a failed abort is left to a lifecycle rule.
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.target.bucket, Key: key, UploadId: id })).catch(() => {});
      }
      throw err;
    }
  }

  async verify(key: string, digest: ObjectDigest): Promise<void> {
    const head = await this.send(() =>
      this.client.send(new HeadObjectCommand({ Bucket: this.target.bucket, Key: key }), this.abort).catch(absent),
    );
    if (!head) throw new ArchiveVerifyError(`${key} is missing from ${this.description}`);
    if (head.ContentLength !== digest.size) throw new ArchiveVerifyError(`${key} holds ${head.ContentLength} bytes, not ${digest.size}`);
    const etag = (head.ETag ?? "").replaceAll('"', "");
    const expected = etagCandidates(digest);
    // SSE-KMS (and SSE-C) ETags are not MD5s: the store checked Content-MD5 on every request instead.
    const opaque = head.ServerSideEncryption === "aws:kms" || head.ServerSideEncryption === "aws:kms:dsse";
    if (!opaque && !expected.includes(etag)) throw new ArchiveVerifyError(`${key} has ETag ${etag}, expected ${expected.join(" or ")}`);
    const meta = head.Metadata?.[MD5_META];
    if (meta !== undefined && meta !== digest.md5) throw new ArchiveVerifyError(`${key} was written with MD5 ${meta}, not ${digest.md5}`);
  }

  async getRange(key: string, start: number, end: number): Promise<Buffer | undefined> {
    if (end <= start) return Buffer.alloc(0);
    return this.getObject(key, `bytes=${start}-${end - 1}`);
  }

  get(key: string): Promise<Buffer | undefined> {
    return this.getObject(key, undefined);
  }

  async *list(prefix: string): AsyncIterable<string> {
    let token: string | undefined;
    for (let page = 0; page < 100_000; page++) {
      const t = token;
      const res = await this.send(() =>
        this.client.send(
          new ListObjectsV2Command({ Bucket: this.target.bucket, Prefix: prefix, ...(t !== undefined && { ContinuationToken: t }) }),
          this.abort,
        ),
      );
      for (const object of res.Contents ?? []) if (object.Key !== undefined) yield object.Key;
      if (!res.IsTruncated || res.NextContinuationToken === undefined) return;
      token = res.NextContinuationToken;
    }
  }

  async probe(signal: AbortSignal): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.target.bucket }), {
        abortSignal: AbortSignal.any([signal, this.options.signal]),
      });
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      const name = err instanceof Error ? err.name : "error";
      throw new Error(`archive ${this.description} does not answer HeadBucket (${status ?? name})`, { cause: err });
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000).map((Key) => ({ Key }));
      const res = await this.send(() =>
        this.client.send(new DeleteObjectsCommand({ Bucket: this.target.bucket, Delete: { Objects: batch, Quiet: true } }), this.abort),
      );
      const failed = res.Errors?.[0];
      if (failed) throw new Error(`cannot delete ${failed.Key} from ${this.description}: ${failed.Code} ${failed.Message}`);
    }
  }

  close(): void {
    this.client.destroy();
  }

  private async getObject(key: string, range: string | undefined): Promise<Buffer | undefined> {
    return this.send(async () => {
      const res = await this.client
        .send(new GetObjectCommand({ Bucket: this.target.bucket, Key: key, ...(range !== undefined && { Range: range }) }), this.abort)
        .catch(absent);
      if (!res?.Body) return undefined;
      return Buffer.from(await res.Body.transformToByteArray());
    });
  }

  private async createUpload(key: string): Promise<string> {
    const res = await this.sendStep(() =>
      this.client.send(new CreateMultipartUploadCommand({ Bucket: this.target.bucket, Key: key, ...this.sse }), this.abort),
    );
    if (!res.UploadId) throw new Error(`${this.description} started an upload of ${key} without an upload id`);
    return res.UploadId;
  }

  /** A request inside a multipart upload: failing it loses every part before it, so it is tried longer. */
  private sendStep<T>(fn: () => Promise<T>): Promise<T> {
    return withRetry(COPY_STEP_RETRY, () => this.send(fn), { signal: this.options.signal, permanent: isPermanent });
  }

  private send<T>(fn: () => Promise<T>): Promise<T> {
    // Client errors other than throttling and timeouts will not be mended by trying again at once.
    return withRetry(this.options.retry, fn, { signal: this.options.signal, permanent: isPermanent });
  }
}

/** The ETag S3 gives a single-request upload (the MD5) or a multipart one (MD5 of the part MD5s, dash, count). */
function etagCandidates(digest: ObjectDigest): string[] {
  if (!digest.partMd5s) return [digest.md5];
  const composite = createHash("md5")
    .update(Buffer.from(digest.partMd5s.join(""), "hex"))
    .digest("hex");
  // Some S3-compatible stores give a multipart object the MD5 of its whole content.
  return [`${composite}-${digest.partMd5s.length}`, digest.md5];
}

function absent(err: unknown): undefined {
  if (err instanceof S3ServiceException && (err.name === "NoSuchKey" || err.name === "NotFound" || err.$metadata.httpStatusCode === 404)) {
    return undefined;
  }
  throw err;
}

function isPermanent(err: unknown): boolean {
  if (!(err instanceof S3ServiceException)) return false;
  const status = err.$metadata.httpStatusCode ?? 0;
  return status >= 400 && status < 500 && status !== 408 && status !== 429 && err.name !== "RequestTimeout";
}
