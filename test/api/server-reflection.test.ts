import { create, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, expect, test } from "vitest";
import { ServerReflection as ReflectionV1, ServerReflectionRequestSchema } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import {
  ServerReflection as ReflectionV1alpha,
  ServerReflectionRequestSchema as RequestV1alphaSchema,
} from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { type LeaderFixture, startTestLeader } from "../helpers/leader-fixture.js";

let f: LeaderFixture;
beforeAll(async () => {
  f = await startTestLeader();
});
afterAll(async () => {
  await f.dispose();
});

async function* requests(...messages: Array<Parameters<typeof create<typeof ServerReflectionRequestSchema>>[1]>) {
  for (const m of messages) yield create(ServerReflectionRequestSchema, m);
}

test("grpc.reflection.v1 lists the service and serves its descriptors with their imports", async () => {
  const client = createClient(ReflectionV1, createGrpcTransport({ baseUrl: f.url }));
  const responses = [];
  for await (const r of client.serverReflectionInfo(
    requests(
      { messageRequest: { case: "listServices", value: "" } },
      { messageRequest: { case: "fileContainingSymbol", value: "joblog.v1.LogService" } },
      { messageRequest: { case: "fileContainingSymbol", value: "joblog.v1.LogService.Push" } },
      { messageRequest: { case: "fileContainingSymbol", value: "no.such.Thing" } },
    ),
  )) {
    responses.push(r);
  }
  expect(responses).toHaveLength(4);
  const [list, bySymbol, byMethod, missing] = responses;
  expect(list?.messageResponse.case === "listServicesResponse" && list.messageResponse.value.service.map((s) => s.name)).toEqual([
    "joblog.v1.LogService",
    "joblog.v1.AdminService",
    "grpc.health.v1.Health",
  ]);
  for (const r of [bySymbol, byMethod]) {
    expect(r?.messageResponse.case).toBe("fileDescriptorResponse");
    if (r?.messageResponse.case !== "fileDescriptorResponse") continue;
    const names = r.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name);
    expect(names).toEqual(["google/protobuf/timestamp.proto", "joblog/v1/log.proto"]);
  }
  expect(missing?.messageResponse.case).toBe("errorResponse");
});

test("grpc.reflection.v1alpha answers too, for older clients", async () => {
  const client = createClient(ReflectionV1alpha, createGrpcTransport({ baseUrl: f.url }));
  async function* list() {
    yield create(RequestV1alphaSchema, { messageRequest: { case: "listServices", value: "" } });
  }
  for await (const r of client.serverReflectionInfo(list())) {
    expect(r.messageResponse.case).toBe("listServicesResponse");
  }
});
