import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, test } from "vitest";
import { TailResponseSchema } from "../../gen/joblog/v1/log_pb.js";
import { tailResponseParts } from "../../src/api/grpc-tail-route.js";

/** The gRPC Tail route writes TailResponse by hand around the log bytes: it must be what protobuf-es writes. */
describe("tailResponseParts", () => {
  const cases = [
    { offset: 0, data: Buffer.from('{"line":"a"}\n'), nextOffset: 13, complete: false },
    { offset: 13, data: Buffer.from("x".repeat(300)), nextOffset: 313, complete: false },
    { offset: 2 ** 40 + 7, data: Buffer.alloc(70_000, 0x61), nextOffset: 2 ** 40 + 70_007, complete: false },
    { offset: Number.MAX_SAFE_INTEGER, data: Buffer.alloc(0), nextOffset: Number.MAX_SAFE_INTEGER, complete: true },
    { offset: 0, data: Buffer.alloc(0), nextOffset: 0, complete: true },
    { offset: 0, data: Buffer.alloc(0), nextOffset: 0, complete: false },
  ];
  test.each(cases)("offset $offset, $data.length bytes, complete $complete", (read) => {
    const message = toBinary(
      TailResponseSchema,
      create(TailResponseSchema, {
        offset: BigInt(read.offset),
        data: read.data,
        nextOffset: BigInt(read.nextOffset),
        complete: read.complete,
      }),
    );
    const frame = Buffer.concat(tailResponseParts(read));
    expect(frame[0]).toBe(0);
    expect(frame.readUInt32BE(1)).toBe(message.length);
    expect(frame.subarray(5).equals(Buffer.from(message))).toBe(true);
  });

  test("the log bytes are sent as they are, not copied", () => {
    const data = Buffer.from("line\n");
    expect(tailResponseParts({ offset: 5, data, nextOffset: 10, complete: false })).toContain(data);
  });
});
