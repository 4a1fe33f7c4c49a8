import type { ArchiveBackend, ObjectDigest } from "./archive-backend.js";
import type { S3Target } from "./archive-settings.js";
import type { S3Backend, S3BackendOptions } from "./s3-backend.js";

/**
 * The S3 backend, with @aws-sdk/client-s3 loaded on the first request instead of
 * when the program starts: the SDK costs about 30 MB of memory and a good part of
 * a CLI command's start, and most leaders and every `joblog run` never use it.
 */
export class LazyS3Backend implements ArchiveBackend {
  readonly description: string;
  private loading: Promise<S3Backend> | undefined;
  private closed = false;

  constructor(
    private readonly target: S3Target,
    private readonly options: S3BackendOptions,
  ) {
    this.description = `s3://${target.bucket}/${target.prefix}`;
  }

  async put(key: string, body: Buffer): Promise<ObjectDigest> {
    return (await this.backend()).put(key, body);
  }

  async putStream(key: string, pieces: AsyncIterable<Buffer>): Promise<ObjectDigest> {
    return (await this.backend()).putStream(key, pieces);
  }

  async verify(key: string, digest: ObjectDigest): Promise<void> {
    return (await this.backend()).verify(key, digest);
  }

  async getRange(key: string, start: number, end: number): Promise<Buffer | undefined> {
    return (await this.backend()).getRange(key, start, end);
  }

  async get(key: string): Promise<Buffer | undefined> {
    return (await this.backend()).get(key);
  }

  async *list(prefix: string): AsyncIterable<string> {
    yield* (await this.backend()).list(prefix);
  }

  async probe(signal: AbortSignal): Promise<void> {
    return (await this.backend()).probe(signal);
  }

  async delete(keys: readonly string[]): Promise<void> {
    return (await this.backend()).delete(keys);
  }

  close(): void {
    this.closed = true;
    void this.loading?.then((backend) => backend.close());
  }

  private backend(): Promise<S3Backend> {
    if (this.closed) return Promise.reject(new Error(`${this.description} is closed`));
    this.loading ??= import("./s3-backend.js").then(({ S3Backend }) => new S3Backend(this.target, this.options));
    return this.loading;
  }
}
