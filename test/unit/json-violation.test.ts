/**
 * The strict JSON check: where a proto3 JSON request goes wrong, named by its
 * proto path, never quoting a value or an unknown name that could be a secret;
 * and what it lets through (everything protobuf-es reads, with defined enums).
 */
import type { DescMessage } from "@bufbuild/protobuf";
import { DescriptorProtoSchema, FieldOptionsSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { CheckRequestSchema } from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { RateLimitRequestSchema } from "../../src/gen/envoy/service/ratelimit/v3/rls_pb.js";
import { BadRequestSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import {
  ListEventsRequestSchema,
  RevokeKeyRequestSchema,
} from "../../src/gen/tollgate/v1/key_service_pb.js";
import {
  AuthorizeRequestSchema,
  RecordEventRequestSchema,
  RotateKeyRequestSchema,
} from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { generateSecret } from "../../src/keys/key-format.js";
import {
  closestField,
  findJsonViolation,
  MAX_JSON_DEPTH,
} from "../../src/transport/json-violation.js";
import { checkJsonRequest } from "../../src/transport/strict-json.js";

const SEVERITIES =
  "SEVERITY_UNSPECIFIED, SEVERITY_INFO, SEVERITY_LOW, SEVERITY_MEDIUM, SEVERITY_HIGH, SEVERITY_CRITICAL";

/** The violated field of `json`, shape pass then value pass, as the server runs them. */
function fieldOf(desc: DescMessage, json: unknown): string | undefined {
  return (findJsonViolation(desc, json) ?? findJsonViolation(desc, json, true))?.field;
}

/** checkJsonRequest's refusal: message and violations, or "accepted". */
function check(desc: DescMessage, text: string) {
  try {
    checkJsonRequest(desc, text);
    return "accepted";
  } catch (err) {
    const e = err as ConnectError;
    expect(e).toBeInstanceOf(ConnectError);
    expect(e.code).toBe(Code.InvalidArgument);
    const violations = e.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations);
    return {
      message: e.message,
      violations: violations.map((v) => ({ field: v.field, description: v.description })),
    };
  }
}

describe("unknown fields", () => {
  it("names an unknown top-level field and suggests the near one", () => {
    expect(findJsonViolation(AuthorizeRequestSchema, { apiKy: "x" })).toEqual({
      field: "apiKy",
      description: "is an unknown field of tollgate.v1.AuthorizeRequest; did you mean api_key?",
    });
    expect(findJsonViolation(RevokeKeyRequestSchema, { keyId: "key_1" })).toEqual({
      field: "keyId",
      description: "is an unknown field of tollgate.v1.RevokeKeyRequest",
    });
  });

  it("names a nested unknown field by its proto path", () => {
    expect(
      fieldOf(RecordEventRequestSchema, { events: [{ id: "a" }, { id: "b", colour: 1 }] }),
    ).toBe("events[1].colour");
    expect(
      fieldOf(CheckRequestSchema, { attributes: { request: { http: { methd: "GET" } } } }),
    ).toBe("attributes.request.http.methd");
    expect(
      fieldOf(RateLimitRequestSchema, {
        domain: "d",
        descriptors: [{ entries: [{ key: "k", value: "v" }] }, { entries: [{ vaule: "v" }] }],
      }),
    ).toBe("descriptors[1].entries[0].vaule");
  });

  it("refuses fields Envoy's newer protos have and these do not (hitsAddend of a descriptor)", () => {
    expect(fieldOf(RateLimitRequestSchema, { descriptors: [{ entries: [], hitsAddend: 3 }] })).toBe(
      "descriptors[0].hitsAddend",
    );
    // The request-level hits_addend is known, by either name.
    expect(fieldOf(RateLimitRequestSchema, { hitsAddend: 3 })).toBeUndefined();
    expect(fieldOf(RateLimitRequestSchema, { hits_addend: 3 })).toBeUndefined();
  });

  it("shows an unknown name only when it is a short identifier not shaped like a key", () => {
    const secret = generateSecret("live");
    for (const name of [
      secret,
      "tg_x",
      "TG_test_abc",
      "f".repeat(33),
      "ap iKey",
      "api-key",
      "apiKey\r\n",
      "x\u0000",
      "ключ",
      "",
      "[tollgate.v1.ext]",
    ]) {
      const v = findJsonViolation(AuthorizeRequestSchema, { apiKey: "k", [name]: 1 });
      expect({ name, field: v?.field }).toEqual({ name, field: "[#1]" });
      expect(v?.description).toContain("name not shown");
      expect(v?.description).not.toContain(name.slice(0, 8) || "\u0000never");
    }
    const nested = findJsonViolation(RecordEventRequestSchema, {
      events: [{ id: "a", subject: "s", [secret]: true }],
    });
    expect(nested?.field).toBe("events[0][#2]");
    // 32 characters is still shown.
    expect(findJsonViolation(AuthorizeRequestSchema, { ["f".repeat(32)]: 1 })?.field).toBe(
      "f".repeat(32),
    );
  });

  it("refuses a field given by its proto name and its JSON name", () => {
    expect(findJsonViolation(AuthorizeRequestSchema, { apiKey: "a", api_key: "b" })).toEqual({
      field: "api_key",
      description: "is set twice (proto and JSON name)",
    });
  });

  it("refuses two members of one oneof, but not a null one", () => {
    const address = (socketAddress: Record<string, unknown>) => ({
      attributes: { source: { address: { socketAddress } } },
    });
    const v = findJsonViolation(
      CheckRequestSchema,
      address({ address: "10.0.0.1", portValue: 1, namedPort: "http" }),
    );
    expect(v).toEqual({
      field: "attributes.source.address.socket_address.named_port",
      description: "must not be set with port_value (oneof port_specifier)",
    });
    expect(
      fieldOf(CheckRequestSchema, address({ address: "10.0.0.1", portValue: 1, namedPort: null })),
    ).toBeUndefined();
  });

  it("bounds the nesting of messages", () => {
    let json: Record<string, unknown> = { name: "leaf" };
    for (let i = 0; i < MAX_JSON_DEPTH + 5; i++) json = { nestedType: [json] };
    const v = findJsonViolation(DescriptorProtoSchema, json);
    expect(v?.description).toBe(`must nest at most ${MAX_JSON_DEPTH} messages deep`);
    expect(v?.field.startsWith("nested_type[0].nested_type[0]")).toBe(true);
  });
});

describe("enum values", () => {
  const event = (e: Record<string, unknown>) => ({ events: [{ id: "a", subject: "s", ...e }] });

  it("refuses short aliases, wrong case and unknown names, listing the accepted names", () => {
    for (const severity of ["HIGH", "high", "severity_high", "SEVERITY_HIGHEST", "", "4"]) {
      expect({
        severity,
        v: findJsonViolation(RecordEventRequestSchema, event({ severity })),
      }).toEqual({
        severity,
        v: {
          field: "events[0].severity",
          description: `must be one of ${SEVERITIES} (tollgate.v1.Severity) or the number of one`,
        },
      });
    }
    expect(fieldOf(RecordEventRequestSchema, event({ subjectKind: "ip" }))).toBe(
      "events[0].subject_kind",
    );
    expect(fieldOf(ListEventsRequestSchema, { subject_kind: "IP" })).toBe("subject_kind");
  });

  it("refuses numbers the enum does not define, non-integers and other JSON types", () => {
    for (const severity of [6, -1, 4.5, 2 ** 31, true, {}, []]) {
      expect({ severity, f: fieldOf(RecordEventRequestSchema, event({ severity })) }).toEqual({
        severity,
        f: "events[0].severity",
      });
    }
  });

  it("accepts every name, every defined number, and null (the default)", () => {
    for (const severity of ["SEVERITY_HIGH", "SEVERITY_UNSPECIFIED", 0, 4, 5, null]) {
      expect({ severity, f: fieldOf(RecordEventRequestSchema, event({ severity })) }).toEqual({
        severity,
        f: undefined,
      });
    }
    expect(
      fieldOf(RecordEventRequestSchema, event({ subjectKind: "SUBJECT_KIND_IP" })),
    ).toBeUndefined();
    expect(fieldOf(RecordEventRequestSchema, event({ subject_kind: 2 }))).toBeUndefined();
  });

  it("checks enums inside lists by index", () => {
    expect(
      fieldOf(FieldOptionsSchema, { targets: ["TARGET_TYPE_FILE", "TARGET_TYPE_FIELD", "FILE"] }),
    ).toBe("targets[2]");
    expect(fieldOf(FieldOptionsSchema, { targets: ["TARGET_TYPE_FILE", null] })).toBe("targets[1]");
    expect(fieldOf(FieldOptionsSchema, { targets: ["TARGET_TYPE_FILE", 1] })).toBeUndefined();
  });
});

describe("shapes and values", () => {
  it("names lists, maps and messages of the wrong JSON type", () => {
    expect(fieldOf(RecordEventRequestSchema, { events: {} })).toBe("events");
    expect(fieldOf(RecordEventRequestSchema, { events: [null] })).toBe("events[0]");
    expect(fieldOf(RecordEventRequestSchema, { events: ["x"] })).toBe("events[0]");
    expect(fieldOf(AuthorizeRequestSchema, { headers: [] })).toBe("headers");
    expect(fieldOf(AuthorizeRequestSchema, { headers: { a: "1", b: null } })).toBe("headers[#1]");
  });

  it("checks scalars and well-known types only in the value pass, as protobuf-es does", () => {
    const bad = { apiKey: "k", cost: "abc" };
    expect(findJsonViolation(AuthorizeRequestSchema, bad)).toBeUndefined();
    expect(findJsonViolation(AuthorizeRequestSchema, bad, true)).toEqual({
      field: "cost",
      description: "must be an integer in the range of uint32, as a JSON number or string",
    });
    for (const cost of [-1, 1.5, 2 ** 32, "1e20", true])
      expect({ cost, f: fieldOf(AuthorizeRequestSchema, { cost }) }).toEqual({ cost, f: "cost" });
    for (const cost of [0, 7, "7", 2 ** 32 - 1])
      expect({ cost, f: fieldOf(AuthorizeRequestSchema, { cost }) }).toEqual({
        cost,
        f: undefined,
      });
    expect(fieldOf(AuthorizeRequestSchema, { requiredScopes: ["a", 2] })).toBe(
      "required_scopes[1]",
    );
    expect(fieldOf(AuthorizeRequestSchema, { headers: { a: "1", b: 2 } })).toBe("headers[#1]");
    expect(fieldOf(RecordEventRequestSchema, { events: [{ time: "yesterday" }] })).toBe(
      "events[0].time",
    );
    expect(fieldOf(RotateKeyRequestSchema, { gracePeriod: "1h" })).toBe("grace_period");
    expect(fieldOf(RotateKeyRequestSchema, { gracePeriod: "3600s" })).toBeUndefined();
  });

  it("lets Struct metadata in Envoy's CheckRequest hold any JSON", () => {
    expect(
      fieldOf(CheckRequestSchema, {
        attributes: { metadataContext: { filterMetadata: { a: { x: [1, { y: null }], z: "s" } } } },
      }),
    ).toBeUndefined();
  });
});

describe("checkJsonRequest", () => {
  const secret = generateSecret("live");

  it("accepts what proto3 JSON allows: JSON names, proto names, enum names and numbers", () => {
    expect(check(AuthorizeRequestSchema, JSON.stringify({ apiKey: secret }))).toBe("accepted");
    expect(check(AuthorizeRequestSchema, JSON.stringify({ api_key: secret }))).toBe("accepted");
    expect(check(AuthorizeRequestSchema, "{}")).toBe("accepted");
    expect(
      check(
        RecordEventRequestSchema,
        JSON.stringify({
          events: [
            { id: "a", severity: "SEVERITY_HIGH", subjectKind: "SUBJECT_KIND_IP" },
            { id: "b", severity: 4, subject_kind: 2, time: "2025-01-31T12:00:00Z" },
          ],
        }),
      ),
    ).toBe("accepted");
  });

  it("fails with one field violation, the same as the handlers' validation", () => {
    expect(check(AuthorizeRequestSchema, JSON.stringify({ apiKy: secret }))).toEqual({
      message:
        "[invalid_argument] invalid request: apiKy: is an unknown field of tollgate.v1.AuthorizeRequest; did you mean api_key?",
      violations: [
        {
          field: "apiKy",
          description: "is an unknown field of tollgate.v1.AuthorizeRequest; did you mean api_key?",
        },
      ],
    });
  });

  it("never quotes a value, whatever is wrong with it", () => {
    for (const text of [
      JSON.stringify({ events: [{ severity: secret }] }),
      JSON.stringify({ events: [{ time: secret }] }),
      JSON.stringify({ apiKey: secret, cost: secret }),
      JSON.stringify({ apiKey: secret, [secret]: secret }),
      JSON.stringify({ apiKey: secret, headers: { [secret]: 5 } }),
      `{"apiKey": ${secret}}`,
      `{"apiKey": "${secret}", "apiKey": "${secret}"}`,
      `"${secret}"`,
    ]) {
      const desc = text.includes("events") ? RecordEventRequestSchema : AuthorizeRequestSchema;
      const r = check(desc, text);
      expect(r).not.toBe("accepted");
      expect(JSON.stringify(r)).not.toContain(secret);
      expect(JSON.stringify(r)).not.toContain(secret.slice(8, 20));
    }
  });

  it("answers a body that is not a JSON object without details", () => {
    expect(check(AuthorizeRequestSchema, "{nope")).toEqual({
      message: "[invalid_argument] request is not valid JSON",
      violations: [],
    });
    for (const text of ["[]", "null", '"x"', "1"])
      expect(check(AuthorizeRequestSchema, text)).toEqual({
        message: "[invalid_argument] request must be a JSON object",
        violations: [],
      });
    expect(check(AuthorizeRequestSchema, '{"apiKey":"a","apiKey":"b"}')).toEqual({
      message:
        "[invalid_argument] request is not valid proto3 JSON for tollgate.v1.AuthorizeRequest (is a key given twice?)",
      violations: [],
    });
  });
});

describe("closestField", () => {
  it("suggests a field a slip away, and nothing for a different word", () => {
    expect(closestField(AuthorizeRequestSchema, "apiKy")).toBe("api_key");
    expect(closestField(AuthorizeRequestSchema, "APIKEY")).toBe("api_key");
    expect(closestField(AuthorizeRequestSchema, "clinetIp")).toBe("client_ip");
    expect(closestField(AuthorizeRequestSchema, "x")).toBeUndefined();
    expect(closestField(AuthorizeRequestSchema, "banana")).toBeUndefined();
    expect(closestField(RevokeKeyRequestSchema, "keyId")).toBeUndefined();
  });
});
