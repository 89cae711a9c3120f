/**
 * The hand decoders of the hot requests (src/transport/hot-decoders.ts) against
 * protobuf-es's fromBinary (readUnknownFields false, as the adapter uses them):
 * on random messages, random bytes, mangled encodings and hand-picked edge
 * cases, a hand decode throws exactly when fromBinary throws and otherwise
 * returns an equal object with the same keys in the same order. Counters of
 * the fast loop show it, not the fallback, decoded the valid inputs.
 */
import {
  create,
  createFileRegistry,
  type DescMessage,
  equals,
  fromBinary,
  type Message,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  AuthorizeRequestSchema,
  AuthorizeResponseSchema,
  CheckRateLimitRequestSchema,
  TollgateService,
} from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import type { Handlers } from "../../src/services/call-context.js";
import { toGrpcService } from "../../src/transport/grpc-adapter.js";
import { createHotDecoders } from "../../src/transport/hot-decoders.js";
import { messageArb } from "../fuzz/arbitraries.js";

const decoders = createHotDecoders();
const SCHEMAS: DescMessage[] = [AuthorizeRequestSchema, CheckRateLimitRequestSchema];

/** What the fast loop did over the inputs compared so far, by schema. */
const taken = new Map<string, { fast: number; fallback: number }>();

function decoderOf(desc: DescMessage) {
  const hot = decoders.forSchema(desc);
  const fast = decoders.fastForSchema(desc);
  if (!hot || !fast) throw new Error(`no hand decoder for ${desc.typeName}`);
  return { hot, fast };
}

/** Runs `f`, giving its result or the fact that it threw. */
function attempt(f: () => Message): { ok: true; m: Message } | { ok: false } {
  try {
    return { ok: true, m: f() };
  } catch {
    return { ok: false };
  }
}

/** Asserts the hand decode of `bytes` is indistinguishable from fromBinary's; true if the fast loop took it. */
function expectSame(desc: DescMessage, bytes: Uint8Array): boolean {
  const { hot, fast } = decoderOf(desc);
  const theirs = attempt(() => fromBinary(desc, bytes, { readUnknownFields: false }));
  const mine = attempt(() => hot(bytes));
  const hex = Buffer.from(bytes).toString("hex");
  expect(mine.ok, `throws iff fromBinary throws, on ${hex}`).toBe(theirs.ok);
  const quick = fast(bytes);
  const count = taken.get(desc.typeName) ?? { fast: 0, fallback: 0 };
  taken.set(desc.typeName, count);
  if (quick === undefined) count.fallback++;
  else count.fast++;
  if (!mine.ok || !theirs.ok) {
    // Where fromBinary throws the fast loop must have given up, not made something up.
    expect(quick, hex).toBeUndefined();
    return false;
  }
  expect(equals(desc, mine.m, theirs.m), hex).toBe(true);
  expect(mine.m).toStrictEqual(theirs.m);
  expect(Object.keys(mine.m)).toEqual(Object.keys(theirs.m));
  const headers = (m: Message) => Object.keys((m as { headers?: object }).headers ?? {});
  expect(headers(mine.m)).toEqual(headers(theirs.m));
  // A "__proto__" header is an own entry, never the map's prototype.
  const proto = (m: Message) => Object.getPrototypeOf((m as { headers?: object }).headers ?? {});
  expect(proto(mine.m)).toBe(proto(theirs.m));
  return quick !== undefined;
}

function varint(v: number | bigint): number[] {
  let n = BigInt(v);
  const out: number[] = [];
  while (n > 0x7fn) {
    out.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  out.push(Number(n));
  return out;
}
const tag = (no: number, wt: number) => varint((no << 3) | wt);
const ld = (no: number, body: number[]) => [...tag(no, 2), ...varint(body.length), ...body];
const ascii = (s: string) => [...Buffer.from(s, "latin1")];
const utf8 = (s: string) => [...Buffer.from(s, "utf8")];

/** A typical Authorize: a 48-char key, method, path, client IP and one scope. */
const TYPICAL_AUTHORIZE = toBinary(
  AuthorizeRequestSchema,
  create(AuthorizeRequestSchema, {
    apiKey: `tg_live_${"k".repeat(40)}`,
    method: "GET",
    path: "/v1/items",
    clientIp: "203.0.113.7",
    requiredScopes: ["items:read"],
  }),
);
const TYPICAL_CHECK = toBinary(
  CheckRateLimitRequestSchema,
  create(CheckRateLimitRequestSchema, {
    keyId: "key_0123456789abcdef",
    method: "GET",
    path: "/v1/items",
    clientIp: "203.0.113.7",
    cost: 1,
  }),
);

/** Bytes of the byte values a wire is made of: tags, varint edges, ASCII, UTF-8 lead bytes. */
const byteArb = fc.oneof(
  fc.integer({ min: 0, max: 255 }),
  fc.constantFrom(0x0a, 0x12, 0x1a, 0x22, 0x38, 0x40, 0x48, 0x80, 0xff, 0x7f, 0x00, 0xc3, 0xed),
);

/** One wire record of any field number and wire type, its payload well or badly formed. */
const recordArb = fc
  .tuple(
    fc.oneof(fc.integer({ min: 0, max: 12 }), fc.constantFrom(15, 16, 100, 2 ** 29 - 1)),
    fc.integer({ min: 0, max: 7 }),
    fc.oneof(
      fc.constantFrom(0, 1, 2, 127, 128, 2 ** 32 - 1, 2 ** 32, 2 ** 35).map((v) => varint(v)),
      fc.constantFrom(
        [0x80, 0x00],
        [0xff, 0xff, 0xff, 0xff, 0x7f],
        [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        Array(11).fill(0x80).concat([0]),
      ),
      fc
        .oneof(
          fc.string({ maxLength: 12 }).map(utf8),
          fc.string({ unit: "binary", maxLength: 6 }).map(utf8),
          fc.array(byteArb, { maxLength: 12 }),
          fc.constantFrom([0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xef, 0xbb, 0xbf, 0x41]),
        )
        .map((b) => [...varint(b.length), ...b]),
      fc.array(byteArb, { minLength: 4, maxLength: 8 }),
    ),
  )
  .map(([no, wt, payload]) => [...tag(no, wt), ...payload]);

/** A map entry record (field 2 of Authorize) with any subset and order of key, value and extras. */
const entryArb = fc
  .array(
    fc.oneof(
      fc.constantFrom("x-api-key", "", "__proto__", "1", "é").map((s) => ld(1, utf8(s))),
      fc.string({ maxLength: 8 }).map((s) => ld(2, utf8(s))),
      recordArb,
    ),
    { maxLength: 3 },
  )
  .map((parts) => ld(2, parts.flat()));

const wireArb = fc
  .array(fc.oneof(recordArb, entryArb), { maxLength: 6 })
  .map((rs) => new Uint8Array(rs.flat()));

/** A valid encoding of a random message of `desc`, maybe with more records spliced in. */
function encodedArb(desc: DescMessage): fc.Arbitrary<Uint8Array> {
  return messageArb(desc, { secrets: ["tg_live_secret"], maxDepth: 2 }).map((m) =>
    toBinary(desc, m),
  );
}

type Mutation = { op: "set" | "insert" | "delete" | "truncate"; at: number; byte: number };
const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  op: fc.constantFrom("set", "insert", "delete", "truncate"),
  at: fc.nat(),
  byte: byteArb,
});

function mutate(bytes: Uint8Array, ms: Mutation[]): Uint8Array {
  const b = [...bytes];
  for (const { op, at, byte } of ms) {
    const i = b.length === 0 ? 0 : at % (b.length + 1);
    if (op === "set" && i < b.length) b[i] = byte;
    else if (op === "insert") b.splice(i, 0, byte);
    else if (op === "delete") b.splice(i, 1);
    else if (op === "truncate") b.length = i;
  }
  return new Uint8Array(b);
}

describe("hand-written decoders of the hot requests", () => {
  it("has a decoder for exactly the hot requests", () => {
    for (const s of SCHEMAS) expect(decoders.forSchema(s)).toBeTypeOf("function");
    expect(decoders.forSchema(AuthorizeResponseSchema)).toBeUndefined();
    expect(decoders.fastForSchema(AuthorizeResponseSchema)).toBeUndefined();
  });

  it("refuses a schema of the same name whose fields differ from the ones it was written for", () => {
    // tollgate.v1.AuthorizeRequest with cost as uint64: the hand decoder would be wrong for it.
    const reg = createFileRegistry(
      create(FileDescriptorProtoSchema, {
        name: "changed.proto",
        package: "tollgate.v1",
        syntax: "proto3",
        messageType: [
          {
            name: "AuthorizeRequest",
            field: [{ name: "cost", number: 9, type: 4, label: 1, jsonName: "cost" }],
          },
        ],
      }),
      () => undefined,
    );
    const changed = reg.getMessage("tollgate.v1.AuthorizeRequest");
    expect(changed).toBeDefined();
    expect(decoders.forSchema(changed as DescMessage)).toBeUndefined();
  });

  it("takes the fast loop for a typical Authorize and CheckRateLimit", () => {
    expect(expectSame(AuthorizeRequestSchema, TYPICAL_AUTHORIZE)).toBe(true);
    expect(expectSame(CheckRateLimitRequestSchema, TYPICAL_CHECK)).toBe(true);
    const m = decoderOf(AuthorizeRequestSchema).fast(TYPICAL_AUTHORIZE);
    expect(m).toMatchObject({
      apiKey: `tg_live_${"k".repeat(40)}`,
      requiredScopes: ["items:read"],
    });
  });

  for (const desc of SCHEMAS) {
    it(`decodes random ${desc.name}s as fromBinary does, all in the fast loop`, () => {
      let runs = 0;
      fc.assert(
        fc.property(encodedArb(desc), (bytes) => {
          runs++;
          // Every encoding toBinary writes is in the fast loop's remit.
          expect(expectSame(desc, bytes)).toBe(true);
        }),
        { numRuns: 3000, interruptAfterTimeLimit: 20_000 },
      );
      expect(runs).toBeGreaterThan(100);
    });

    it(`throws iff fromBinary throws on random wire records for ${desc.name}`, () => {
      fc.assert(
        fc.property(wireArb, (bytes) => {
          expectSame(desc, bytes);
        }),
        { numRuns: 5000, interruptAfterTimeLimit: 20_000 },
      );
    });

    it(`throws iff fromBinary throws on random bytes for ${desc.name}`, () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 48 }), (bytes) => {
          expectSame(desc, bytes);
        }),
        { numRuns: 3000, interruptAfterTimeLimit: 10_000 },
      );
    });

    it(`matches fromBinary on mangled and extended encodings of ${desc.name}`, () => {
      fc.assert(
        fc.property(
          encodedArb(desc),
          fc.array(mutationArb, { minLength: 1, maxLength: 3 }),
          wireArb,
          fc.boolean(),
          (bytes, ms, extra, append) => {
            expectSame(desc, mutate(bytes, ms));
            // Valid messages with more records after (unknown fields, repeats).
            const joined = append ? [...bytes, ...extra] : [...extra, ...bytes];
            expectSame(desc, new Uint8Array(joined));
          },
        ),
        { numRuns: 3000, interruptAfterTimeLimit: 20_000 },
      );
    });
  }

  it("saw both paths across the random inputs (the fallback is exercised too)", () => {
    for (const s of SCHEMAS) {
      const c = taken.get(s.typeName);
      expect(c?.fast).toBeGreaterThan(1000);
      expect(c?.fallback).toBeGreaterThan(100);
    }
  });

  const A = AuthorizeRequestSchema;
  const C = CheckRateLimitRequestSchema;
  const key = ld(1, ascii("k"));
  // [name, schema, bytes, taken by the fast loop?]; fromBinary decides the value or the throw.
  const cases: [string, DescMessage, number[], boolean][] = [
    ["empty input", A, [], true],
    [
      "repeated scalar: last wins",
      A,
      [...key, ...ld(1, ascii("second")), ...ld(3, ascii("GET"))],
      true,
    ],
    ["repeated list entries append", A, [...ld(6, ascii("a")), ...ld(6, ascii("b"))], true],
    ["map entry without key", A, ld(2, ld(2, ascii("v"))), true],
    ["map entry without value", A, ld(2, ld(1, ascii("k"))), true],
    ["empty map entry", A, ld(2, []), true],
    ["map entry value before key", A, ld(2, [...ld(2, ascii("v")), ...ld(1, ascii("k"))]), true],
    [
      "repeated map key: last wins, first position",
      A,
      [
        ...ld(2, [...ld(1, ascii("a")), ...ld(2, ascii("1"))]),
        ...ld(2, ld(1, ascii("b"))),
        ...ld(2, [...ld(1, ascii("a")), ...ld(2, ascii("2"))]),
      ],
      true,
    ],
    ["integer-like map keys", A, [...ld(2, ld(1, ascii("9"))), ...ld(2, ld(1, ascii("1")))], true],
    ["map key __proto__", A, ld(2, [...ld(1, ascii("__proto__")), ...ld(2, ascii("x"))]), true],
    ["map entry with an unknown field", A, ld(2, [...ld(1, ascii("k")), ...tag(3, 0), 1]), false],
    [
      "map entry string running past the entry",
      A,
      [...tag(2, 2), 2, ...ld(1, ascii("abc"))],
      false,
    ],
    ["map entry longer than the input", A, [...tag(2, 2), 9, ...ld(1, ascii("k"))], false],
    ["uint32 over 32 bits (5 bytes)", A, [...tag(9, 0), 0xff, 0xff, 0xff, 0xff, 0x7f], true],
    ["uint32 2^32 - 1", C, [...tag(8, 0), ...varint(2 ** 32 - 1)], true],
    ["uint32 from a 10-byte varint", C, [...tag(8, 0), ...varint(2n ** 64n - 1n)], false],
    ["varint over 10 bytes", C, [...tag(8, 0), ...Array(10).fill(0x80), 0], false],
    ["overlong zero", C, [...tag(8, 0), 0x80, 0x80, 0x00], true],
    ["bool 2", A, [...tag(7, 0), 2], true],
    ["bool 0 after 1", A, [...tag(7, 0), 1, ...tag(7, 0), 0], true],
    ["bool as a 2-byte varint", A, [...tag(7, 0), 0x80, 0x01], false],
    ["bool as a 2-byte zero", A, [...tag(7, 0), 0x80, 0x00], false],
    ["truncated string", A, [...tag(1, 2), 5, ...ascii("abc")], false],
    ["truncated varint", A, [...tag(9, 0), 0x80], false],
    ["tag alone", C, tag(1, 2), false],
    ["field number 0", A, [0x02, 0x00], false],
    ["wire type 6", A, [0x0e, 0x00], false],
    ["unknown varint field", A, [...tag(20, 0), 1, ...key], false],
    [
      "unknown fixed32, fixed64 fields",
      C,
      [...tag(20, 5), 1, 2, 3, 4, ...tag(21, 1), ...Array(8).fill(7)],
      false,
    ],
    ["unknown group", A, [...tag(20, 3), ...tag(1, 0), 5, ...tag(20, 4), ...key], false],
    ["mismatched end group", A, [...tag(20, 3), ...tag(21, 4)], false],
    ["stray end group", A, tag(20, 4), false],
    ["overlong tag", A, [0x8a, 0x00, 1, 0x41], false],
    ["string field as a varint", A, [...tag(1, 0), 1, 0x41], false],
    ["uint32 field length-delimited", C, [...tag(8, 2), 1, 5], false],
    [
      "non-ASCII strings",
      A,
      [...ld(1, utf8("é😀")), ...ld(2, [...ld(1, utf8("ñ")), ...ld(2, utf8("€"))])],
      true,
    ],
    ["a leading BOM is text", C, ld(2, utf8("\ufeffsub")), true],
    ["invalid UTF-8: 0xff", A, ld(3, [0x47, 0xff]), false],
    ["invalid UTF-8: overlong NUL", C, ld(1, [0xc0, 0x80]), false],
    ["invalid UTF-8: surrogate", C, ld(6, [0xed, 0xa0, 0x80]), false],
    ["invalid UTF-8 in a map value", A, ld(2, ld(2, [0x80])), false],
    [
      "large ASCII input (no whole-input slice)",
      A,
      [
        ...ld(1, ascii("k".repeat(200))),
        ...ld(4, ascii(`/${"p".repeat(600)}`)),
        ...ld(2, ld(1, ascii("x-api-key"))),
      ],
      true,
    ],
    ["large non-ASCII input", C, ld(6, utf8(`/${"é".repeat(400)}`)), true],
    ["string of 13+ chars in a small input", C, ld(1, ascii("key_0123456789abcdef")), true],
  ];
  for (const [name, desc, bytes, fast] of cases) {
    it(`edge case: ${name} (${desc.name})`, () => {
      expect(expectSame(desc, new Uint8Array(bytes))).toBe(fast);
    });
  }

  it("is what the gRPC adapter decodes with, and only without readUnknownFields", () => {
    const path = "/tollgate.v1.TollgateService/Authorize";
    const impl = {} as Handlers<typeof TollgateService>;
    const withUnknown = new Uint8Array([...TYPICAL_AUTHORIZE, ...tag(20, 0), 1]);
    const plain = toGrpcService(TollgateService, impl, false).direct.get(path);
    const keeping = toGrpcService(TollgateService, impl, true).direct.get(path);
    if (!plain || !keeping) throw new Error(`no direct method ${path}`);
    expect(plain.decode(TYPICAL_AUTHORIZE)).toStrictEqual(
      fromBinary(AuthorizeRequestSchema, TYPICAL_AUTHORIZE),
    );
    expect((plain.decode(withUnknown) as Message).$unknown).toBeUndefined();
    expect((keeping.decode(withUnknown) as Message).$unknown).toHaveLength(1);
    expect(() => plain.decode(new Uint8Array([0x0a, 5, 0x41]))).toThrow();
  });
});
