import { FRAME_HEADER_BYTES } from "./grpc-call.js";

/** A varint field of a message: its number and value (uint64 offsets below 2^53, or a bool). */
export type VarintField = readonly [field: number, value: number | boolean];

/**
 * A gRPC frame of a message that carries one large `bytes` field, as parts: the
 * frame header with the varint fields before it, the bytes themselves (sent as
 * they are, never copied), and the varint fields after. Byte for byte what
 * protobuf-es encodes when the fields are given in field-number order: fields in
 * order, zero and false left out.
 */
export function framedMessageParts(
  before: readonly VarintField[],
  bytesField: number,
  bytes: Uint8Array,
  after: readonly VarintField[],
): Uint8Array[] {
  const head: number[] = [];
  for (const [field, value] of before) pushVarintField(head, field, value);
  if (bytes.length > 0) pushVarint(head, (bytesField << 3) | 2, bytes.length);
  const tail: number[] = [];
  for (const [field, value] of after) pushVarintField(tail, field, value);
  const first = Buffer.allocUnsafe(FRAME_HEADER_BYTES + head.length);
  first[0] = 0;
  first.writeUInt32BE(head.length + bytes.length + tail.length, 1);
  first.set(head, FRAME_HEADER_BYTES);
  const parts: Uint8Array[] = [first];
  if (bytes.length > 0) parts.push(bytes);
  if (tail.length > 0) parts.push(Uint8Array.from(tail));
  return parts;
}

function pushVarintField(out: number[], field: number, value: number | boolean): void {
  const v = typeof value === "boolean" ? Number(value) : value;
  if (v !== 0) pushVarint(out, field << 3, v);
}

/** A tag (wire type in its low bits) and then a varint of `value`, a non-negative safe integer. */
function pushVarint(out: number[], tag: number, value: number): void {
  out.push(tag);
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}
