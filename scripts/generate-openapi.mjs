#!/usr/bin/env node
/**
 * Writes docs/openapi.yaml: an OpenAPI 3.1 description of the Connect JSON API
 * (unary RPCs as `POST /<package.Service>/<Method>`, application/json) of the
 * services in proto/tollgate/v1, generated from the protos themselves (buf
 * build → descriptors with comments → protobuf-es reflection). Run by
 * `npm run generate`; CI fails if the committed file differs.
 *
 *   node scripts/generate-openapi.mjs [--out docs/openapi.yaml]
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createFileRegistry, fromBinary, ScalarType } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { stringify } from "yaml";

const out = process.argv.includes("--out")
  ? process.argv[process.argv.indexOf("--out") + 1]
  : "docs/openapi.yaml";
const SERVICES = ["tollgate.v1.TollgateService", "tollgate.v1.KeyService"];
/** Services whose every RPC needs the management token. */
const MANAGEMENT = new Set(["tollgate.v1.KeyService"]);
/** Methods of other services that need the management token too. */
const MANAGEMENT_METHODS = new Set(["tollgate.v1.TollgateService.ReportUsage"]);
const VERSION = JSON.parse(readFileSync("package.json", "utf8")).version;

const dir = mkdtempSync(join(tmpdir(), "tollgate-openapi-"));
const image = join(dir, "image.binpb");
try {
  execFileSync("node_modules/.bin/buf", ["build", "proto", "-o", image], { stdio: "inherit" });
} catch {
  process.exit(1);
}
const set = fromBinary(FileDescriptorSetSchema, readFileSync(image));
rmSync(dir, { recursive: true, force: true });
const registry = createFileRegistry(set);

// protobuf-es v2 keeps comments in the descriptor protos' source_code_info;
// index them by path, as protoc-gen-es does.
const comments = new Map();
for (const f of set.file) {
  for (const loc of f.sourceCodeInfo?.location ?? []) {
    const text = (loc.leadingComments ?? "").trim();
    if (text) comments.set(`${f.name}:${loc.path.join(".")}`, text.replace(/\n ?/g, "\n"));
  }
}
function commentOf(desc) {
  const path = [];
  let d = desc;
  // Build the source path the way descriptor.proto numbers it.
  for (;;) {
    if (d.kind === "field") {
      path.unshift(2, d.parent.proto.field.indexOf(d.proto));
      d = d.parent;
    } else if (d.kind === "message") {
      if (d.parent) {
        path.unshift(3, d.parent.proto.nestedType.indexOf(d.proto));
        d = d.parent;
      } else {
        path.unshift(4, d.file.proto.messageType.indexOf(d.proto));
        break;
      }
    } else if (d.kind === "enum") {
      if (d.parent) {
        path.unshift(4, d.parent.proto.enumType.indexOf(d.proto));
        d = d.parent;
      } else {
        path.unshift(5, d.file.proto.enumType.indexOf(d.proto));
        break;
      }
    } else if (d.kind === "rpc") {
      path.unshift(
        6,
        d.parent.file.proto.service.indexOf(d.parent.proto),
        2,
        d.parent.proto.method.indexOf(d.proto),
      );
      d = d.parent;
      break;
    } else if (d.kind === "service") {
      path.unshift(6, d.file.proto.service.indexOf(d.proto));
      break;
    } else break;
  }
  return comments.get(`${d.file.proto.name}:${path.join(".")}`);
}

const schemas = {};
const INT64 = new Set([
  ScalarType.INT64,
  ScalarType.UINT64,
  ScalarType.SINT64,
  ScalarType.FIXED64,
  ScalarType.SFIXED64,
]);
const INT32 = new Set([
  ScalarType.INT32,
  ScalarType.UINT32,
  ScalarType.SINT32,
  ScalarType.FIXED32,
  ScalarType.SFIXED32,
]);

function scalar(t) {
  if (t === ScalarType.STRING) return { type: "string" };
  if (t === ScalarType.BOOL) return { type: "boolean" };
  if (t === ScalarType.BYTES) return { type: "string", contentEncoding: "base64" };
  if (t === ScalarType.FLOAT || t === ScalarType.DOUBLE) return { type: "number" };
  if (INT32.has(t))
    return {
      type: "integer",
      format: t === ScalarType.UINT32 || t === ScalarType.FIXED32 ? "uint32" : "int32",
    };
  // proto3 JSON writes 64-bit integers as strings and reads either form.
  if (INT64.has(t)) return { type: ["string", "integer"], pattern: "^-?[0-9]+$", format: "int64" };
  return {};
}

/** Well-known types by their proto3 JSON form. */
const WKT = {
  "google.protobuf.Timestamp": { type: "string", format: "date-time" },
  "google.protobuf.Duration": { type: "string", pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$" },
  "google.protobuf.Struct": { type: "object", additionalProperties: true },
  "google.protobuf.Value": {},
  "google.protobuf.Empty": { type: "object" },
  "google.protobuf.FieldMask": { type: "string" },
  "google.protobuf.Any": { type: "object", properties: { "@type": { type: "string" } } },
};

function ref(desc) {
  if (WKT[desc.typeName]) return WKT[desc.typeName];
  if (!schemas[desc.typeName]) {
    schemas[desc.typeName] = {}; // placeholder against recursion
    schemas[desc.typeName] = desc.kind === "enum" ? enumSchema(desc) : messageSchema(desc);
  }
  return { $ref: `#/components/schemas/${desc.typeName}` };
}

function enumSchema(e) {
  const s = {
    // Strict JSON: the value names as proto3 JSON spells them, or their numbers.
    oneOf: [
      { type: "string", enum: e.values.map((v) => v.name) },
      { type: "integer", enum: e.values.map((v) => v.number) },
    ],
  };
  const c = commentOf(e);
  if (c) s.description = c;
  return s;
}

function fieldSchema(f) {
  const one = (kind) =>
    kind === "scalar" ? scalar(f.scalar) : kind === "enum" ? ref(f.enum) : ref(f.message);
  if (f.fieldKind === "list") return { type: "array", items: one(f.listKind) };
  if (f.fieldKind === "map") {
    const v =
      f.mapKind === "scalar"
        ? scalar(f.scalar)
        : f.mapKind === "enum"
          ? ref(f.enum)
          : ref(f.message);
    return { type: "object", additionalProperties: v };
  }
  return one(f.fieldKind);
}

function messageSchema(m) {
  const properties = {};
  for (const f of m.fields) {
    const s = fieldSchema(f);
    const c = commentOf(f);
    properties[f.jsonName] = c
      ? s.$ref
        ? { allOf: [s], description: c }
        : { ...s, description: c }
      : s;
  }
  const s = { type: "object", properties, additionalProperties: false };
  const c = commentOf(m);
  if (c) s.description = c;
  return s;
}

const CONNECT_ERROR = {
  type: "object",
  description:
    "A Connect error: the call failed (a denial is data in a 200 response, never an error). `code` maps to the HTTP status: invalid_argument, failed_precondition, out_of_range 400; unauthenticated 401; permission_denied 403; not_found 404; already_exists, aborted 409; resource_exhausted 429; unimplemented 501; unavailable 503; internal, unknown, data_loss 500; deadline_exceeded 504.",
  properties: {
    code: {
      type: "string",
      enum: [
        "canceled",
        "unknown",
        "invalid_argument",
        "deadline_exceeded",
        "not_found",
        "already_exists",
        "permission_denied",
        "resource_exhausted",
        "failed_precondition",
        "aborted",
        "out_of_range",
        "unimplemented",
        "internal",
        "unavailable",
        "data_loss",
        "unauthenticated",
      ],
    },
    message: { type: "string" },
    details: {
      type: "array",
      items: {
        type: "object",
        properties: { type: { type: "string" }, value: { type: "string" }, debug: {} },
      },
    },
  },
  required: ["code"],
};

const errorResponse = (description) => ({
  description,
  content: { "application/json": { schema: { $ref: "#/components/schemas/connect.error" } } },
});

const paths = {};
for (const name of SERVICES) {
  const svc = registry.getService(name);
  if (!svc) throw new Error(`no service ${name} in proto/`);
  for (const m of svc.methods) {
    if (m.methodKind !== "unary") continue;
    const managed = MANAGEMENT.has(name) || MANAGEMENT_METHODS.has(`${name}.${m.name}`);
    const op = {
      operationId: `${svc.name}_${m.name}`,
      tags: [svc.name],
      summary: m.name,
      requestBody: {
        required: true,
        content: { "application/json": { schema: ref(m.input) } },
      },
      responses: {
        200: { description: "OK", content: { "application/json": { schema: ref(m.output) } } },
        400: errorResponse(
          "invalid_argument (field violations in details), failed_precondition, out_of_range",
        ),
        ...(managed && {
          401: errorResponse("unauthenticated: the management token is missing or wrong"),
        }),
        404: errorResponse("not_found"),
        415: errorResponse(
          "invalid_argument: the content type is not one the server accepts; the message lists those it does",
        ),
        429: errorResponse("resource_exhausted"),
        503: errorResponse("unavailable: the store is down and the fail mode is closed"),
        default: errorResponse("another Connect error"),
      },
    };
    const c = commentOf(m);
    if (c) op.description = c;
    if (managed) op.security = [{ managementToken: [] }];
    paths[`/${svc.typeName}/${m.name}`] = { post: op };
  }
}

const sorted = Object.fromEntries(Object.entries(schemas).sort(([a], [b]) => a.localeCompare(b)));
const document = {
  openapi: "3.1.0",
  info: {
    title: "Tollgate Connect JSON API",
    version: VERSION,
    description:
      "Generated from proto/tollgate/v1 by scripts/generate-openapi.mjs — do not edit. The Connect protocol's unary JSON form: POST /<package.Service>/<Method> with an application/json body (proto3 JSON; unknown fields are refused). The same RPCs are served over gRPC and gRPC-Web.",
    license: { name: "Apache-2.0", identifier: "Apache-2.0" },
  },
  servers: [{ url: "http://127.0.0.1:8080", description: "the HTTP port (TOLLGATE_HTTP_ADDR)" }],
  paths,
  components: {
    schemas: { ...sorted, "connect.error": CONNECT_ERROR },
    securitySchemes: {
      managementToken: {
        type: "http",
        scheme: "bearer",
        description:
          "The management token (TOLLGATE_MANAGEMENT_TOKEN); KeyService RPCs need it (dev mode without one: open to loopback callers only).",
      },
    },
  },
};
// The image build has no docs/ of its own.
mkdirSync(dirname(out), { recursive: true });
writeFileSync(
  out,
  `# Generated by scripts/generate-openapi.mjs from proto/ — do not edit.\n${stringify(document, { lineWidth: 0 })}`,
);
console.log(
  `wrote ${out}: ${Object.keys(paths).length} operations, ${Object.keys(sorted).length} schemas`,
);
