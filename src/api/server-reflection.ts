import { create, createRegistry, type DescFile, type DescService, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

// gRPC status NOT_FOUND, as the reflection protocol reports it inside a response.
const NOT_FOUND = 5;

type ReflectionRequest = v1.ServerReflectionRequest | v1alpha.ServerReflectionRequest;
type ReflectionResponse = MessageInitShape<typeof v1.ServerReflectionResponseSchema>;

/**
 * gRPC server reflection (v1 and v1alpha), so grpcurl, `buf curl` and Postman can
 * list the services and fetch their descriptors without a copy of the proto.
 */
export function registerServerReflection(router: ConnectRouter, services: readonly DescService[]): void {
  const files = new Map<string, DescFile>();
  const addFile = (file: DescFile) => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    for (const dep of file.dependencies) addFile(dep);
  };
  for (const service of services) addFile(service.file);
  const registry = createRegistry(...files.values());
  const names = services.map((s) => s.typeName);

  /** The file and everything it imports, dependencies first, as serialized FileDescriptorProtos. */
  const withDependencies = (file: DescFile): Uint8Array[] => {
    const out: Uint8Array[] = [];
    const seen = new Set<string>();
    const visit = (f: DescFile) => {
      if (seen.has(f.proto.name)) return;
      seen.add(f.proto.name);
      for (const dep of f.dependencies) visit(dep);
      out.push(toBinary(FileDescriptorProtoSchema, f.proto));
    };
    visit(file);
    return out;
  };

  const fileOfSymbol = (symbol: string): DescFile | undefined => {
    const direct = registry.get(symbol);
    if (direct && "file" in direct) return direct.file;
    // A method or field: look up its parent.
    const parent = registry.get(symbol.slice(0, Math.max(0, symbol.lastIndexOf("."))));
    return parent && "file" in parent ? parent.file : undefined;
  };

  const respond = (req: ReflectionRequest): ReflectionResponse => {
    const base = { validHost: req.host, originalRequest: req as v1.ServerReflectionRequest };
    const notFound = (what: string): ReflectionResponse => ({
      ...base,
      messageResponse: { case: "errorResponse", value: { errorCode: NOT_FOUND, errorMessage: `${what} not found` } },
    });
    const r = req.messageRequest;
    switch (r.case) {
      case "listServices":
        return { ...base, messageResponse: { case: "listServicesResponse", value: { service: names.map((name) => ({ name })) } } };
      case "fileByFilename": {
        const file = files.get(r.value);
        return file
          ? { ...base, messageResponse: { case: "fileDescriptorResponse", value: { fileDescriptorProto: withDependencies(file) } } }
          : notFound(`file ${r.value}`);
      }
      case "fileContainingSymbol": {
        const file = fileOfSymbol(r.value);
        return file
          ? { ...base, messageResponse: { case: "fileDescriptorResponse", value: { fileDescriptorProto: withDependencies(file) } } }
          : notFound(`symbol ${r.value}`);
      }
      case "allExtensionNumbersOfType":
        return { ...base, messageResponse: { case: "allExtensionNumbersResponse", value: { baseTypeName: r.value, extensionNumber: [] } } };
      default:
        return notFound("extension");
    }
  };

  router.service(v1.ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) yield create(v1.ServerReflectionResponseSchema, respond(req));
    },
  });
  router.service(v1alpha.ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const req of requests)
        yield create(
          v1alpha.ServerReflectionResponseSchema,
          respond(req) as MessageInitShape<typeof v1alpha.ServerReflectionResponseSchema>,
        );
    },
  });
}
