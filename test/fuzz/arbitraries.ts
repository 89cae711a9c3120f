/**
 * fast-check arbitraries built from protobuf-es descriptors: a random but
 * well-typed message for any request type (fields, lists, maps, oneofs and
 * nested messages to a bounded depth), with strings drawn from hostile
 * vocabularies. Secret-bearing fields get the secrets under test, so a test
 * can check that no answer ever echoes them.
 */
import {
  create,
  type DescField,
  type DescMessage,
  type Message,
  ScalarType,
} from "@bufbuild/protobuf";
import fc from "fast-check";

/** Fields whose value is a key secret. */
const SECRET_FIELDS = new Set(["apiKey", "currentSecret"]);

/** Strings worth trying in any field. */
const NASTY = [
  "",
  " ",
  "\u0000",
  "\r\n",
  "{",
  "}",
  "{a}:*",
  "*",
  "..",
  "/../..",
  "//",
  "/v1/x",
  "/v1/%2e%2e/x",
  "/v1/%2f",
  "%",
  "%zz",
  "\\",
  "GET",
  "free",
  "pro",
  "key_0000000000000000",
  "127.0.0.1",
  "::1",
  "10.0.0.0/8",
  "orders:read",
  "*",
  "x-api-key",
  "😀",
  "\ud800",
  "a".repeat(300),
  "tg_live_",
];

/** Options: the secrets to place in secret-bearing fields. */
export interface ArbOptions {
  secrets: readonly string[];
  maxDepth?: number;
}

function stringArb(field: DescField, o: ArbOptions): fc.Arbitrary<string> {
  const base = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...NASTY) },
    { weight: 3, arbitrary: fc.string({ maxLength: 24 }) },
    { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 24 }) },
    { weight: 1, arbitrary: fc.string({ minLength: 200, maxLength: 3000 }) },
  );
  if (SECRET_FIELDS.has(field.localName)) {
    return fc.oneof(fc.constantFrom(...o.secrets), base);
  }
  return base;
}

function scalarArb(field: DescField, t: ScalarType, o: ArbOptions): fc.Arbitrary<unknown> {
  switch (t) {
    case ScalarType.STRING:
      return stringArb(field, o);
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 40 });
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return fc.double();
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.oneof(
        fc.constantFrom(0, 1, 999_999, 1_000_000, 1_000_001, 2 ** 32 - 1),
        fc.nat({ max: 2 ** 32 - 1 }),
      );
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    default:
      return fc.oneof(
        fc.constantFrom(0n, -1n, 1n, 2n ** 53n, -(2n ** 63n), 2n ** 63n - 1n),
        fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
      );
  }
}

function valueArb(field: DescField, o: ArbOptions, depth: number): fc.Arbitrary<unknown> | null {
  switch (field.fieldKind) {
    case "scalar":
      return scalarArb(field, field.scalar, o);
    case "enum":
      return fc.integer({ min: -1, max: 12 });
    case "message":
      return depth > 0 ? messageInit(field.message, o, depth - 1) : null;
    case "list": {
      const el =
        field.listKind === "scalar"
          ? scalarArb(field, field.scalar, o)
          : field.listKind === "enum"
            ? fc.integer({ min: -1, max: 12 })
            : depth > 0
              ? messageInit(field.message, o, depth - 1)
              : null;
      return el ? fc.array(el, { maxLength: 4 }) : null;
    }
    case "map": {
      const value =
        field.mapKind === "scalar"
          ? scalarArb(field, field.scalar, o)
          : field.mapKind === "enum"
            ? fc.integer({ min: 0, max: 5 })
            : depth > 0
              ? messageInit(field.message, o, depth - 1)
              : null;
      if (!value) return null;
      const key =
        field.mapKey === ScalarType.STRING
          ? fc.oneof(
              fc.constantFrom("x-api-key", "X-Api-Key", "x-forwarded-for", "traceparent", ""),
              fc.string({ maxLength: 12 }),
            )
          : fc.nat({ max: 1000 }).map(String);
      const entries = fc.dictionary(key, value, { maxKeys: 4 });
      // Secret-bearing header maps: sometimes carry a real key.
      if (field.localName === "headers" && field.mapKind === "scalar") {
        return fc.tuple(entries, fc.option(fc.constantFrom(...o.secrets))).map(([m, s]) => {
          const out = { ...(m as Record<string, unknown>) };
          if (s !== null) out["x-api-key"] = s;
          return out;
        });
      }
      return entries;
    }
  }
}

/** A random init object for `desc` (pass it to `create`). */
export function messageInit(
  desc: DescMessage,
  o: ArbOptions,
  depth = o.maxDepth ?? 4,
): fc.Arbitrary<Record<string, unknown>> {
  const parts: fc.Arbitrary<[string, unknown] | null>[] = [];
  for (const field of desc.fields) {
    if (field.oneof) continue;
    const v = valueArb(field, o, depth);
    if (v) parts.push(fc.option(v.map((x) => [field.localName, x] as [string, unknown])));
  }
  for (const oneof of desc.oneofs) {
    const choices = oneof.fields.flatMap((f) => {
      const v = valueArb(f, o, depth);
      return v ? [v.map((x) => [oneof.localName, { case: f.localName, value: x }])] : [];
    });
    if (choices.length > 0)
      parts.push(fc.option(fc.oneof(...(choices as fc.Arbitrary<[string, unknown]>[]))));
  }
  return fc
    .tuple(...parts)
    .map((kv) => Object.fromEntries(kv.filter((x): x is [string, unknown] => x !== null)));
}

/** A random message of type `desc`. */
export function messageArb(desc: DescMessage, o: ArbOptions): fc.Arbitrary<Message> {
  return messageInit(desc, o).map((init) => create(desc, init as never) as Message);
}
