/**
 * Says where a proto3 JSON request goes wrong, by walking the parsed JSON
 * against the request's message descriptor. protobuf-es refuses such a request
 * but names neither the path of the field (`events[0].severity`) nor anything
 * safe to show a caller (its messages quote the offending value), so this walk
 * is what the INVALID_ARGUMENT field violation is built from.
 *
 * Two passes, both stopping at the first problem in document order:
 *  - the shape pass (always): unknown fields, a field given twice (by its proto
 *    and its JSON name), two members of one oneof, lists and maps that are not
 *    arrays and objects, nulls where protobuf-es refuses them, and enum values
 *    that are neither one of the enum's names nor one of its defined numbers —
 *    stricter than protobuf-es, which takes any int32 for an open enum: a number
 *    the schema does not define is as unknown as a misspelt name;
 *  - the value pass (only once protobuf-es has refused the request): the first
 *    scalar or well-known-type value it refuses, found by handing each value,
 *    alone, to protobuf-es itself, so the walk never disagrees with the parser.
 *
 * Fields are named by their proto name, joined with `.`; list items by index
 * (`events[1]`); map entries by position (`headers[#2]`), never by key, as
 * validation.ts does. An unknown name is caller input and could be a secret
 * sent in the wrong place: it is shown only when it is a short identifier that
 * is not shaped like a Tollgate key, otherwise by its position (`[#0]`).
 * Descriptions never quote a value.
 */
import {
  type DescEnum,
  type DescField,
  type DescMessage,
  type DescOneof,
  fromJson,
  ScalarType,
} from "@bufbuild/protobuf";

/** One problem: the proto path of the field and what is wrong, without its value. */
export interface JsonViolation {
  field: string;
  description: string;
}

/** Messages nested deeper than this are refused (protobuf-es's own limit is 100). */
export const MAX_JSON_DEPTH = 64;

/** Unknown names shown as sent: short identifiers, not shaped like a key (`tg_…`). */
const SHOWN_NAME = /^(?!tg_)[A-Za-z][A-Za-z0-9_]{0,31}$/i;

/** Enum names listed in a violation; longer enums end with "…". */
const MAX_LISTED_NAMES = 16;

/** Well-known types with a JSON form of their own, checked by protobuf-es as a whole. */
const WELL_KNOWN = new Set(
  [
    "Any",
    "Timestamp",
    "Duration",
    "FieldMask",
    "Struct",
    "Value",
    "ListValue",
    "DoubleValue",
    "FloatValue",
    "Int64Value",
    "UInt64Value",
    "Int32Value",
    "UInt32Value",
    "BoolValue",
    "StringValue",
    "BytesValue",
  ].map((n) => `google.protobuf.${n}`),
);

const STRICT = { ignoreUnknownFields: false } as const;

/**
 * The first problem of `json` as a `desc` request, or undefined. `json` is the
 * parsed request body. With `values` false only the shape pass runs; with true
 * the value pass too (call it once protobuf-es refused the request).
 */
export function findJsonViolation(
  desc: DescMessage,
  json: unknown,
  values = false,
): JsonViolation | undefined {
  return message(desc, json, "", values, 0);
}

function message(
  desc: DescMessage,
  json: unknown,
  path: string,
  values: boolean,
  depth: number,
): JsonViolation | undefined {
  if (WELL_KNOWN.has(desc.typeName)) return values ? wellKnown(desc, json, path) : undefined;
  if (!isObject(json)) return { field: path, description: "must be a JSON object" };
  if (depth >= MAX_JSON_DEPTH)
    return { field: path, description: `must nest at most ${MAX_JSON_DEPTH} messages deep` };
  const fields = fieldsByKey(desc);
  const seen = new Set<DescField>();
  const oneofs = new Map<DescOneof, DescField>();
  for (const [i, [key, value]] of Object.entries(json).entries()) {
    const field = fields.get(key);
    if (!field) return unknownField(desc, key, i, path);
    const at = join(path, field.name);
    if (seen.has(field)) return { field: at, description: "is set twice (proto and JSON name)" };
    seen.add(field);
    // protobuf-es skips a null scalar member of a oneof before counting it.
    if (field.oneof && !(value === null && field.fieldKind === "scalar")) {
      const other = oneofs.get(field.oneof);
      if (other)
        return {
          field: at,
          description: `must not be set with ${other.name} (oneof ${field.oneof.name})`,
        };
      oneofs.set(field.oneof, field);
    }
    const v = fieldValue(desc, field, key, value, at, values, depth);
    if (v) return v;
  }
  return undefined;
}

function fieldValue(
  parent: DescMessage,
  field: DescField,
  key: string,
  value: unknown,
  at: string,
  values: boolean,
  depth: number,
): JsonViolation | undefined {
  // A null field is its default (Value and NullValue read null as themselves).
  if (value === null) return undefined;
  switch (field.fieldKind) {
    case "enum":
      return enumValue(field.enum, value, at);
    case "message":
      return message(field.message, value, at, values, depth + 1);
    case "scalar":
      return values ? scalar(parent, field, key, value, at) : undefined;
    case "list": {
      if (!Array.isArray(value)) return { field: at, description: "must be a JSON array" };
      for (const [i, item] of value.entries()) {
        const p = `${at}[${i}]`;
        if (item === null && !nullable(field)) return { field: p, description: "must not be null" };
        const v =
          field.listKind === "enum"
            ? enumValue(field.enum, item, p)
            : field.listKind === "message"
              ? message(field.message, item, p, values, depth + 1)
              : values
                ? scalar(parent, field, key, [item], p)
                : undefined;
        if (v) return v;
      }
      return undefined;
    }
    case "map": {
      if (!isObject(value)) return { field: at, description: "must be a JSON object" };
      for (const [i, [k, item]] of Object.entries(value).entries()) {
        const p = `${at}[#${i}]`;
        if (item === null && !nullable(field)) return { field: p, description: "must not be null" };
        const v =
          field.mapKind === "enum"
            ? enumValue(field.enum, item, p)
            : field.mapKind === "message"
              ? message(field.message, item, p, values, depth + 1)
              : undefined;
        if (v) return v;
        // The entry alone, key and value, as protobuf-es reads it.
        if (values && !accepts(parent, { [key]: { [k]: item } }))
          return {
            field: p,
            description: `must have a ${ScalarType[field.mapKey].toLowerCase()} key and a valid value`,
          };
      }
      return undefined;
    }
  }
}

/** Null list items and map values are refused, except of Value and NullValue. */
function nullable(field: DescField & { fieldKind: "list" | "map" }): boolean {
  const kind = field.fieldKind === "list" ? field.listKind : field.mapKind;
  if (kind === "enum") return field.enum?.typeName === "google.protobuf.NullValue";
  if (kind === "message") return field.message?.typeName === "google.protobuf.Value";
  return false;
}

/** A name of the enum (as proto3 JSON spells it) or one of its defined numbers. */
function enumValue(e: DescEnum, value: unknown, at: string): JsonViolation | undefined {
  if (value === null && e.typeName === "google.protobuf.NullValue") return undefined;
  const known =
    typeof value === "string"
      ? e.values.some((v) => v.name === value || v.jsonName === value)
      : typeof value === "number" && e.values.some((v) => v.number === value);
  if (known) return undefined;
  const names = e.values.slice(0, MAX_LISTED_NAMES).map((v) => v.name);
  if (e.values.length > MAX_LISTED_NAMES) names.push("…");
  return {
    field: at,
    description: `must be one of ${names.join(", ")} (${e.typeName}) or the number of one`,
  };
}

/** Whether protobuf-es reads `json` as a `desc` message. */
function accepts(desc: DescMessage, json: Record<string, unknown>): boolean {
  try {
    fromJson(desc, json as never, STRICT);
    return true;
  } catch {
    return false;
  }
}

/** The value pass for a scalar: the field alone, as protobuf-es reads it. */
function scalar(
  parent: DescMessage,
  field: DescField,
  key: string,
  value: unknown,
  at: string,
): JsonViolation | undefined {
  if (accepts(parent, { [key]: value })) return undefined;
  return { field: at, description: `must be ${scalarForm(field.scalar ?? ScalarType.STRING)}` };
}

function scalarForm(t: ScalarType): string {
  const name = ScalarType[t].toLowerCase();
  switch (t) {
    case ScalarType.STRING:
      return "a JSON string";
    case ScalarType.BOOL:
      return "true or false";
    case ScalarType.BYTES:
      return "a base64 string";
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return `a JSON number (${name}), or "NaN", "Infinity" or "-Infinity"`;
    default:
      return `an integer in the range of ${name}, as a JSON number or string`;
  }
}

/** The value pass for a well-known type: the whole value, as protobuf-es reads it. */
function wellKnown(desc: DescMessage, json: unknown, path: string): JsonViolation | undefined {
  try {
    fromJson(desc, json as never, STRICT);
    return undefined;
  } catch {
    const form: Record<string, string> = {
      "google.protobuf.Timestamp": ': an RFC 3339 string such as "2025-01-31T12:00:00Z"',
      "google.protobuf.Duration": ': seconds with an "s" suffix, such as "1.5s"',
      "google.protobuf.FieldMask": ": a string of comma-separated lowerCamelCase paths",
    };
    return {
      field: path,
      description: `must be a valid ${desc.typeName} in proto3 JSON${form[desc.typeName] ?? ""}`,
    };
  }
}

function unknownField(desc: DescMessage, key: string, index: number, path: string): JsonViolation {
  if (!SHOWN_NAME.test(key)) {
    return {
      field: `${path}[#${index}]`,
      description: `is an unknown field of ${desc.typeName} (name not shown: not a short identifier)`,
    };
  }
  const near = closestField(desc, key);
  return {
    field: join(path, key),
    description: `is an unknown field of ${desc.typeName}${near ? `; did you mean ${near}?` : ""}`,
  };
}

/**
 * The field whose name is nearest `key` (case and `_` ignored), if it is at
 * most 2 edits away and the edits are at most a third of the name.
 */
export function closestField(desc: DescMessage, key: string): string | undefined {
  const norm = (s: string) => s.toLowerCase().replaceAll("_", "");
  const k = norm(key);
  let best: { name: string; d: number } | undefined;
  for (const f of desc.fields) {
    const d = editDistance(k, norm(f.name));
    if (d <= 2 && d * 3 <= k.length && (!best || d < best.d)) best = { name: f.name, d };
  }
  return best?.name;
}

/** Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number) => d[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, at(i - 2, j - 2) + 1);
      (d[i] as number[])[j] = v;
    }
  }
  return at(a.length, b.length);
}

const byKey = new WeakMap<DescMessage, Map<string, DescField>>();

/** A message's fields by proto name and by JSON name, as protobuf-es looks them up. */
function fieldsByKey(desc: DescMessage): Map<string, DescField> {
  let m = byKey.get(desc);
  if (!m) {
    m = new Map();
    for (const f of desc.fields) m.set(f.name, f).set(f.jsonName, f);
    byKey.set(desc, m);
  }
  return m;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function join(path: string, name: string): string {
  return path === "" ? name : `${path}.${name}`;
}
