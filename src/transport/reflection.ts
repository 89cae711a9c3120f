import { type DescFile, type DescService, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";

/**
 * The serialised FileDescriptorProtos of the files declaring `services` and all
 * their imports, in the shape @grpc/reflection reads from a proto-loader
 * package definition. Lets grpc-js reflection describe protobuf-es services.
 */
export function reflectionPackage(
  services: readonly DescService[],
): Record<string, { fileDescriptorProtos: Buffer[] }> {
  const seen = new Map<string, Buffer>();
  const visit = (f: DescFile) => {
    if (seen.has(f.proto.name)) return;
    seen.set(f.proto.name, Buffer.from(toBinary(FileDescriptorProtoSchema, f.proto)));
    for (const dep of f.dependencies) visit(dep);
  };
  for (const s of services) visit(s.file);
  const fileDescriptorProtos = [...seen.values()];
  return Object.fromEntries(services.map((s) => [s.typeName, { fileDescriptorProtos }]));
}
