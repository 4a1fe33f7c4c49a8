import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/**
 * A small KMS for tests: speaks the AWS JSON 1.1 protocol of TrentService
 * (GenerateDataKey, Decrypt, Encrypt) on loopback, so the real
 * @aws-sdk/client-kms talks to it. Ciphertext blobs are
 * `len(arn) ‖ arn ‖ nonce ‖ AES-GCM(ciphertext) ‖ tag` with the encryption
 * context as additional data, so a wrong context fails as KMS's does. It can be
 * made to fail (500) or stall (never answer), and records every call.
 */

export type FakeKmsMode = "up" | "fail" | "stall";

export interface KmsCall {
  operation: string;
  keyId: string | undefined;
  context: Record<string, string>;
  ok: boolean;
}

const REGION = "us-east-1";
const ACCOUNT = "111122223333";

export class FakeKms {
  mode: FakeKmsMode = "up";
  readonly calls: KmsCall[] = [];
  private readonly keys = new Map<string, { material: Buffer; enabled: boolean }>();
  private readonly aliases = new Map<string, string>();
  private readonly sockets = new Set<Socket>();
  private readonly stalled = new Set<ServerResponse>();

  private constructor(
    private readonly server: Server,
    readonly endpoint: string,
  ) {}

  static async start(): Promise<FakeKms> {
    let kms: FakeKms | undefined;
    const server = createServer((req, res) => kms?.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    kms = new FakeKms(server, `http://127.0.0.1:${port}`);
    server.on("connection", (socket) => {
      kms?.sockets.add(socket);
      socket.once("close", () => kms?.sockets.delete(socket));
    });
    return kms;
  }

  /** Creates a key and returns its ARN; `alias` (e.g. "alias/joblog") points at it. */
  createKey(alias?: string): string {
    const arn = `arn:aws:kms:${REGION}:${ACCOUNT}:key/${randomBytes(16).toString("hex")}`;
    this.keys.set(arn, { material: randomBytes(32), enabled: true });
    if (alias) this.aliases.set(alias, arn);
    return arn;
  }

  /** A disabled key refuses Decrypt, as KMS does (DisabledException). */
  disableKey(arn: string): void {
    const key = this.keys.get(arn);
    if (key) key.enabled = false;
  }

  /** Answers requests left stalling with a 500, and makes the server answer normally again. */
  recover(): void {
    this.mode = "up";
    for (const res of this.stalled) res.destroy();
    this.stalled.clear();
  }

  async close(): Promise<void> {
    for (const res of this.stalled) res.destroy();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private resolve(keyId: string | undefined): string | undefined {
    if (!keyId) return undefined;
    if (keyId.startsWith("alias/")) return this.aliases.get(keyId);
    if (this.keys.has(keyId)) return keyId;
    return [...this.keys.keys()].find((arn) => arn.endsWith(`/${keyId}`));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const target = String(req.headers["x-amz-target"] ?? "");
      const operation = target.replace(/^TrentService\./, "");
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Record<string, unknown>;
      } catch {
        return this.error(res, 400, "SerializationException", "bad JSON");
      }
      const context = (body.EncryptionContext ?? {}) as Record<string, string>;
      const call: KmsCall = { operation, keyId: body.KeyId as string | undefined, context, ok: false };
      this.calls.push(call);
      if (this.mode === "stall") {
        this.stalled.add(res);
        return;
      }
      if (this.mode === "fail") return this.error(res, 500, "KMSInternalException", "the fake KMS is failing on purpose");
      if (!req.headers.authorization?.startsWith("AWS4-HMAC-SHA256")) {
        return this.error(res, 400, "MissingAuthenticationTokenException", "request is not signed");
      }
      try {
        const out = this.operate(operation, body, context);
        call.ok = true;
        res.writeHead(200, { "content-type": "application/x-amz-json-1.1" });
        res.end(JSON.stringify(out));
      } catch (err) {
        const e = err as { type?: string; message: string };
        this.error(res, 400, e.type ?? "ValidationException", e.message);
      }
    });
  }

  private operate(operation: string, body: Record<string, unknown>, context: Record<string, string>): Record<string, unknown> {
    const fail = (type: string, message: string) => Object.assign(new Error(message), { type });
    switch (operation) {
      case "GenerateDataKey":
      case "Encrypt": {
        const arn = this.resolve(body.KeyId as string | undefined);
        const key = arn ? this.keys.get(arn) : undefined;
        if (!arn || !key) throw fail("NotFoundException", `key ${String(body.KeyId)} does not exist`);
        if (!key.enabled) throw fail("DisabledException", `key ${arn} is disabled`);
        if (operation === "GenerateDataKey" && body.KeySpec !== "AES_256") throw fail("ValidationException", "KeySpec must be AES_256");
        const plaintext = operation === "Encrypt" ? Buffer.from(String(body.Plaintext), "base64") : randomBytes(32);
        const blob = this.seal(arn, key.material, plaintext, context);
        return operation === "Encrypt"
          ? { CiphertextBlob: blob.toString("base64"), KeyId: arn, EncryptionAlgorithm: "SYMMETRIC_DEFAULT" }
          : { CiphertextBlob: blob.toString("base64"), Plaintext: plaintext.toString("base64"), KeyId: arn };
      }
      case "Decrypt": {
        const blob = Buffer.from(String(body.CiphertextBlob), "base64");
        const arnLength = blob.readUInt16BE(0);
        const arn = blob.toString("utf8", 2, 2 + arnLength);
        const key = this.keys.get(arn);
        if (!key) throw fail("InvalidCiphertextException", "ciphertext names an unknown key");
        if (!key.enabled) throw fail("DisabledException", `key ${arn} is disabled`);
        const sealed = blob.subarray(2 + arnLength);
        try {
          const decipher = createDecipheriv("aes-256-gcm", key.material, sealed.subarray(0, 12));
          decipher.setAAD(contextAad(context));
          decipher.setAuthTag(sealed.subarray(sealed.length - 16));
          const plaintext = Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]);
          return { Plaintext: plaintext.toString("base64"), KeyId: arn, EncryptionAlgorithm: "SYMMETRIC_DEFAULT" };
        } catch {
          throw fail("InvalidCiphertextException", "ciphertext or encryption context does not match");
        }
      }
      default:
        throw fail("UnknownOperationException", `operation ${operation} is not supported by the fake KMS`);
    }
  }

  private seal(arn: string, material: Buffer, plaintext: Buffer, context: Record<string, string>): Buffer {
    const nonce = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", material, nonce);
    cipher.setAAD(contextAad(context));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const head = Buffer.alloc(2);
    head.writeUInt16BE(Buffer.byteLength(arn));
    return Buffer.concat([head, Buffer.from(arn), nonce, body, cipher.getAuthTag()]);
  }

  private error(res: ServerResponse, status: number, type: string, message: string): void {
    res.writeHead(status, { "content-type": "application/x-amz-json-1.1", "x-amzn-errortype": type });
    res.end(JSON.stringify({ __type: type, message }));
  }
}

function contextAad(context: Record<string, string>): Buffer {
  const sorted = Object.keys(context)
    .sort()
    .map((k) => [k, context[k]]);
  return Buffer.from(JSON.stringify(sorted));
}

/**
 * The real SDK signs requests with credentials from the standard chain: sets test
 * ones in the environment (and keeps it off the instance metadata service); the
 * returned function puts the environment back.
 */
export function useTestAwsCredentials(): () => void {
  const saved = { ...process.env };
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: "AKIATESTTESTTESTTEST",
    AWS_SECRET_ACCESS_KEY: "test-secret",
    AWS_EC2_METADATA_DISABLED: "true",
  });
  return () => {
    process.env = saved;
  };
}
