import type { EncryptionContext, WrappedKey } from "./key-provider.js";

/**
 * A run's wrapped data key as stored beside its chunks: JSON, because it is tiny,
 * read once per cache miss, and should be readable by an operator debugging a
 * key problem (it holds nothing secret without the master key).
 */
export interface DataKeyRecord extends WrappedKey {
  context: EncryptionContext;
  createdAt: number;
}

export function encodeDataKeyRecord(record: DataKeyRecord): Buffer {
  return Buffer.from(
    JSON.stringify({
      v: 1,
      keyId: record.keyId,
      wrapped: record.wrapped.toString("base64"),
      workspace: record.context.workspace,
      run: record.context.run,
      createdAt: record.createdAt,
    }),
  );
}

export function decodeDataKeyRecord(value: Buffer): DataKeyRecord {
  const raw = JSON.parse(value.toString("utf8")) as Record<string, unknown>;
  if (raw.v !== 1 || typeof raw.keyId !== "string" || typeof raw.wrapped !== "string") {
    throw new Error(`unreadable data key record (version ${String(raw.v)})`);
  }
  return {
    keyId: raw.keyId,
    wrapped: Buffer.from(raw.wrapped, "base64"),
    context: { workspace: String(raw.workspace), run: String(raw.run) },
    createdAt: Number(raw.createdAt),
  };
}
