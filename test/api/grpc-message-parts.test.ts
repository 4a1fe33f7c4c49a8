import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, test } from "vitest";
import { ReadResponseSchema, TailResponseSchema } from "../../gen/joblog/v1/log_pb.js";
import { readResponseParts } from "../../src/api/grpc-read-route.js";
import { tailResponseParts } from "../../src/api/grpc-tail-route.js";

/** The gRPC Tail and Read routes write their answers by hand around the log bytes: it must be what protobuf-es writes. */
const reads = [
  { offset: 0, data: Buffer.from('{"line":"a"}\n'), nextOffset: 13, length: 13, complete: false },
  { offset: 13, data: Buffer.from("x".repeat(300)), nextOffset: 313, length: 400, complete: false },
  { offset: 2 ** 40 + 7, data: Buffer.alloc(70_000, 0x61), nextOffset: 2 ** 40 + 70_007, length: 2 ** 41, complete: true },
  {
    offset: Number.MAX_SAFE_INTEGER,
    data: Buffer.alloc(0),
    nextOffset: Number.MAX_SAFE_INTEGER,
    length: Number.MAX_SAFE_INTEGER,
    complete: true,
  },
  { offset: 0, data: Buffer.alloc(0), nextOffset: 0, length: 0, complete: true },
  { offset: 0, data: Buffer.alloc(0), nextOffset: 0, length: 0, complete: false },
];

function expectFrame(parts: Uint8Array[], message: Uint8Array): void {
  const frame = Buffer.concat(parts);
  expect(frame[0]).toBe(0);
  expect(frame.readUInt32BE(1)).toBe(message.length);
  expect(frame.subarray(5).equals(Buffer.from(message))).toBe(true);
}

describe("framed answers", () => {
  test.each(reads)("TailResponse: offset $offset, $data.length bytes, complete $complete", (read) => {
    const message = create(TailResponseSchema, {
      offset: BigInt(read.offset),
      data: read.data,
      nextOffset: BigInt(read.nextOffset),
      complete: read.complete,
    });
    expectFrame(tailResponseParts(read), toBinary(TailResponseSchema, message));
  });

  test.each(reads)("ReadResponse: offset $offset, $data.length bytes, length $length, complete $complete", (read) => {
    const message = create(ReadResponseSchema, {
      offset: BigInt(read.offset),
      data: read.data,
      nextOffset: BigInt(read.nextOffset),
      length: BigInt(read.length),
      complete: read.complete,
    });
    expectFrame(readResponseParts(read), toBinary(ReadResponseSchema, message));
  });

  test("the log bytes are sent as they are, not copied", () => {
    const data = Buffer.from("line\n");
    expect(tailResponseParts({ offset: 5, data, nextOffset: 10, complete: false })).toContain(data);
    expect(readResponseParts({ offset: 5, data, nextOffset: 10, length: 10, complete: false })).toContain(data);
  });
});
