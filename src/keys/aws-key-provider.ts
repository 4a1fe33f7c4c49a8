import { DecryptCommand, EncryptCommand, GenerateDataKeyCommand, KMSClient } from "@aws-sdk/client-kms";
import type { EncryptionContext, GeneratedKey, KeyProvider, WrappedKey } from "./key-provider.js";
import { KeyAccessError, KeyUnavailableError } from "./key-provider.js";

export interface AwsKeyProviderOptions {
  /** Key id, ARN or alias (`alias/joblog`) of the symmetric KMS key that wraps data keys. */
  keyId: string;
  region?: string | undefined;
  /** A KMS-compatible endpoint (tests, LocalStack); the AWS endpoint of the region when unset. */
  endpoint?: string | undefined;
  /** Bound on one call including its retries: a stalled KMS must not stall a Push forever. */
  timeoutMs: number;
  /** Told of every call's outcome (metrics). */
  onCall?: ((operation: string, outcome: KmsCallOutcome) => void) | undefined;
}

export type KmsCallOutcome = "ok" | "unavailable" | "refused";

/** Failures that say "try again later" rather than "this will never work". */
const TRANSIENT = new Set([
  "ThrottlingException",
  "KMSInternalException",
  "DependencyTimeoutException",
  "KeyUnavailableException",
  "TimeoutError",
  "AbortError",
]);

/**
 * Data keys from AWS KMS: GenerateDataKey (AES_256) for a new run, Decrypt to
 * unwrap, Encrypt to re-wrap under the configured key. The encryption context
 * {workspace, run} is bound into every wrapped key, and shows up in CloudTrail.
 * Credentials come from the standard AWS chain (env, profile, instance role).
 */
export class AwsKeyProvider implements KeyProvider {
  readonly description: string;
  private readonly client: KMSClient;
  /** The ARN KMS reported for the configured key (which may be an alias), once seen. */
  private currentArn: string | undefined;

  constructor(private readonly options: AwsKeyProviderOptions) {
    this.description = `AWS KMS key ${options.keyId}`;
    this.client = new KMSClient({
      ...(options.region ? { region: options.region } : {}),
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      maxAttempts: 2,
      requestHandler: {
        connectionTimeout: Math.min(options.timeoutMs, 3000),
        requestTimeout: options.timeoutMs,
        throwOnRequestTimeout: true,
      },
    });
  }

  async generateDataKey(context: EncryptionContext): Promise<GeneratedKey> {
    const out = await this.call("GenerateDataKey", (abortSignal) =>
      this.client.send(new GenerateDataKeyCommand({ KeyId: this.options.keyId, KeySpec: "AES_256", EncryptionContext: { ...context } }), {
        abortSignal,
      }),
    );
    if (out.Plaintext?.length !== 32 || !out.CiphertextBlob) {
      throw new KeyAccessError(`${this.description}: GenerateDataKey returned no 256-bit key`);
    }
    this.currentArn = out.KeyId ?? this.currentArn;
    return { plaintext: Buffer.from(out.Plaintext), wrapped: Buffer.from(out.CiphertextBlob), keyId: out.KeyId ?? this.options.keyId };
  }

  async unwrap(key: WrappedKey, context: EncryptionContext): Promise<Buffer> {
    const out = await this.call("Decrypt", (abortSignal) =>
      this.client.send(new DecryptCommand({ CiphertextBlob: key.wrapped, EncryptionContext: { ...context } }), { abortSignal }),
    );
    if (out.Plaintext?.length !== 32) throw new KeyAccessError(`${this.description}: Decrypt returned no 256-bit key`);
    return Buffer.from(out.Plaintext);
  }

  async rewrap(key: WrappedKey, context: EncryptionContext): Promise<WrappedKey | undefined> {
    if (this.currentArn !== undefined && key.keyId === this.currentArn) return undefined;
    const plaintext = await this.unwrap(key, context);
    const out = await this.call("Encrypt", (abortSignal) =>
      this.client.send(new EncryptCommand({ KeyId: this.options.keyId, Plaintext: plaintext, EncryptionContext: { ...context } }), {
        abortSignal,
      }),
    );
    if (!out.CiphertextBlob) throw new KeyAccessError(`${this.description}: Encrypt returned no ciphertext`);
    this.currentArn = out.KeyId ?? this.currentArn;
    return { wrapped: Buffer.from(out.CiphertextBlob), keyId: out.KeyId ?? this.options.keyId };
  }

  /**
   * Readiness: KMS answers and will make data keys for the configured key. A
   * GenerateDataKey, because the leader is certainly allowed that one; its key is dropped.
   */
  async probe(signal: AbortSignal): Promise<void> {
    await this.call("GenerateDataKey", (abortSignal) =>
      this.client.send(
        new GenerateDataKeyCommand({ KeyId: this.options.keyId, KeySpec: "AES_256", EncryptionContext: { joblog: "readiness" } }),
        { abortSignal: AbortSignal.any([abortSignal, signal]) },
      ),
    );
  }

  // KMS keeps old key material for Decrypt by itself; rotation only re-wraps.
  async beginRotation(): Promise<void> {}
  async finishRotation(): Promise<void> {}

  close(): void {
    this.client.destroy();
  }

  private async call<T>(operation: string, send: (signal: AbortSignal) => Promise<T>): Promise<T> {
    try {
      const out = await send(AbortSignal.timeout(this.options.timeoutMs));
      this.options.onCall?.(operation, "ok");
      return out;
    } catch (err) {
      const name = err instanceof Error ? err.name : "";
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      const reason = err instanceof Error ? err.message : String(err);
      // No HTTP status at all: the request never got an answer (refused, reset, timed out).
      if (TRANSIENT.has(name) || status === undefined || status >= 500 || status === 429) {
        this.options.onCall?.(operation, "unavailable");
        throw new KeyUnavailableError(`${this.description} is unreachable (${operation}: ${name || "error"}: ${reason})`, { cause: err });
      }
      this.options.onCall?.(operation, "refused");
      throw new KeyAccessError(`${this.description} refused ${operation}: ${name}: ${reason}`, { cause: err });
    }
  }
}
