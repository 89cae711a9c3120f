import {
  create,
  type DescMessage,
  equals,
  fromBinary,
  type Message,
  toBinary,
} from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  HeaderValueOption_HeaderAppendAction,
  HeaderValueOptionSchema,
} from "../../src/gen/envoy/config/core/v3/base_pb.js";
import { CheckResponseSchema } from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import {
  RateLimitResponse_Code,
  RateLimitResponse_DescriptorStatusSchema,
  RateLimitResponse_RateLimit_Unit,
  RateLimitResponseSchema,
} from "../../src/gen/envoy/service/ratelimit/v3/rls_pb.js";
import { StatusSchema } from "../../src/gen/google/rpc/status_pb.js";
import { HeaderSchema, Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { IdentitySchema } from "../../src/gen/tollgate/v1/key_pb.js";
import {
  LimitBy,
  LimitKind,
  LimitStatusSchema,
  RateLimitResultSchema,
} from "../../src/gen/tollgate/v1/ratelimit_pb.js";
import {
  AuthorizeResponseSchema,
  CheckRateLimitResponseSchema,
  KeyHintsSchema,
} from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import type { KeyRecord } from "../../src/keys/key-record.js";
import { identityToProto } from "../../src/services/convert.js";
import { createHotEncoders } from "../../src/transport/hot-encoders.js";
import { messageArb } from "../fuzz/arbitraries.js";

const encoders = createHotEncoders();
const SCHEMAS: DescMessage[] = [
  AuthorizeResponseSchema,
  CheckRateLimitResponseSchema,
  CheckResponseSchema,
  RateLimitResponseSchema,
];

/** JSON for a google.protobuf.Struct field (protobuf-es holds it as a JsonObject). */
const jsonObjectArb = fc.dictionary(
  fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom("decision_id", "1", "é😀", "")),
  fc.jsonValue({ maxDepth: 3 }),
  { maxKeys: 4 },
);

/**
 * A random message of `desc`. The descriptor-driven arbitrary knows neither
 * Struct fields (JSON here) nor wrapper fields (a bare boolean here), so the
 * Envoy messages' are replaced after the fact.
 */
function randomMessage(desc: DescMessage, maxDepth: number): fc.Arbitrary<Message> {
  return fc
    .tuple(
      messageArb(desc, { secrets: ["tg_live_secret"], maxDepth }),
      fc.array(fc.option(jsonObjectArb), { minLength: 8, maxLength: 8 }),
      fc.array(fc.option(fc.boolean()), { minLength: 8, maxLength: 8 }),
    )
    .map(([m, jsons, bools]) => {
      let j = 0;
      let b = 0;
      const fix = (v: unknown): void => {
        if (typeof v !== "object" || v === null) return;
        const o = v as Record<string, unknown>;
        if ("dynamicMetadata" in o) o.dynamicMetadata = jsons[j++ % 8] ?? undefined;
        if ("append" in o || o.$typeName === "envoy.config.core.v3.HeaderValueOption")
          o.append = bools[b++ % 8] ?? undefined;
        for (const [k, x] of Object.entries(o)) if (k !== "dynamicMetadata") fix(x);
      };
      fix(m);
      return m;
    });
}

function hand(desc: DescMessage, m: Message): Buffer {
  const enc = encoders.forSchema(desc);
  if (!enc) throw new Error(`no hand encoder for ${desc.typeName}`);
  return enc(m);
}

function expectSameBytes(desc: DescMessage, m: Message): void {
  const mine = hand(desc, m);
  const theirs = toBinary(desc, m);
  if (Buffer.compare(mine, theirs) !== 0) {
    // The hex of both makes a failure readable.
    expect(mine.toString("hex")).toBe(Buffer.from(theirs).toString("hex"));
  }
}

/** Unknown fields with valid wire data for each wire type, on field numbers no schema uses. */
const unknownArb = fc.array(
  fc.oneof(
    fc.nat({ max: 2 ** 31 }).map((v) => ({ wireType: 0, data: toVarint(v) })),
    fc.uint8Array({ maxLength: 20 }).map((b) => ({
      wireType: 2,
      data: new Uint8Array([...toVarint(b.length), ...b]),
    })),
    fc.uint8Array({ minLength: 4, maxLength: 4 }).map((b) => ({ wireType: 5, data: b })),
    fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b) => ({ wireType: 1, data: b })),
  ),
  { maxLength: 3 },
);

/** Whether any string in `v` has a surrogate that is not half of a pair. */
function hasLoneSurrogate(v: unknown): boolean {
  if (typeof v === "string") return /\p{Cs}/u.test(v);
  if (typeof v !== "object" || v === null) return false;
  for (const [k, x] of Object.entries(v))
    if (hasLoneSurrogate(k) || hasLoneSurrogate(x)) return true;
  return false;
}

function toVarint(v: number): Uint8Array {
  const out: number[] = [];
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return new Uint8Array(out);
}

describe("hand-written encoders of the hot responses", () => {
  it("has an encoder for exactly the hot responses", () => {
    for (const s of SCHEMAS) expect(encoders.forSchema(s)).toBeTypeOf("function");
    expect(encoders.forSchema(HeaderSchema)).toBeUndefined();
    expect(encoders.forSchema(StatusSchema)).toBeUndefined();
  });

  for (const desc of SCHEMAS) {
    it(`writes the bytes toBinary writes for random ${desc.name}s, and they decode back`, () => {
      fc.assert(
        fc.property(randomMessage(desc, 4), (m) => {
          expectSameBytes(desc, m);
          // A lone surrogate is written as U+FFFD (by toBinary too), so only
          // well-formed text reads back as it was.
          if (!hasLoneSurrogate(m)) {
            expect(equals(desc, fromBinary(desc, hand(desc, m)), m)).toBe(true);
          }
        }),
        { numRuns: 4000, interruptAfterTimeLimit: 20_000 },
      );
    });

    it(`writes unknown fields back as toBinary does, for ${desc.name}`, () => {
      fc.assert(
        fc.property(
          randomMessage(desc, 3),
          fc.array(fc.tuple(fc.integer({ min: 100, max: 2 ** 29 - 1 }), unknownArb), {
            maxLength: 2,
          }),
          (m, extra) => {
            const unknown = extra.flatMap(([no, fields]) => fields.map((f) => ({ no, ...f })));
            if (unknown.length > 0) m.$unknown = unknown;
            // Also on a nested message, when there is one.
            const nested =
              (m as { rateLimit?: Message; status?: Message }).rateLimit ??
              (m as { status?: Message }).status;
            if (nested && unknown.length > 0) nested.$unknown = unknown;
            expectSameBytes(desc, m);
          },
        ),
        { numRuns: 1000, interruptAfterTimeLimit: 10_000 },
      );
    });
  }

  it("encodes the boundaries of varints, 64-bit values and UTF-8 exactly", () => {
    const strings = ["", "a", "é", "€", "😀", "\ud800", "\udc00x", "a😀\ud83d", "x".repeat(200)];
    const u64 = [
      0n,
      1n,
      127n,
      128n,
      2n ** 32n - 1n,
      2n ** 32n,
      2n ** 35n,
      2n ** 63n,
      2n ** 64n - 1n,
    ];
    const i64 = [0n, -1n, 1n, -(2n ** 63n), 2n ** 63n - 1n, 2n ** 32n, -(2n ** 32n)];
    for (let i = 0; i < 9; i++) {
      const s = strings[i] as string;
      const status = create(LimitStatusSchema, {
        name: s,
        by: LimitBy.KEY,
        kind: LimitKind.RATE,
        limit: u64[i],
        remaining: u64[8 - i],
        reset: { seconds: i64[i % i64.length] as bigint, nanos: -(2 ** 31) + i },
        window: { seconds: 5n, nanos: 2 ** 31 - 1 },
      });
      const m = create(CheckRateLimitResponseSchema, {
        allowed: i % 2 === 0,
        reason: i === 0 ? -5 : i,
        result: create(RateLimitResultSchema, { deciding: status, limits: [status, status] }),
        responseHeaders: [create(HeaderSchema, { name: s, value: s.repeat(i * 10) })],
        decisionId: s,
        httpStatus: [0, 1, 127, 128, 16383, 16384, 2 ** 21, 2 ** 28, 2 ** 32 - 1][i],
      });
      expectSameBytes(CheckRateLimitResponseSchema, m);
    }
  });

  it("throws, as toBinary does, on an integer out of range", () => {
    const m = create(AuthorizeResponseSchema, { httpStatus: 2 ** 32 });
    expect(() => toBinary(AuthorizeResponseSchema, m)).toThrow();
    expect(() => hand(AuthorizeResponseSchema, m)).toThrow();
    const bad = create(CheckRateLimitResponseSchema, {
      result: { limits: [{ limit: -1n }] },
    });
    expect(() => toBinary(CheckRateLimitResponseSchema, bad)).toThrow();
    expect(() => hand(CheckRateLimitResponseSchema, bad)).toThrow();
    // And the next encode is whole again.
    expectSameBytes(AuthorizeResponseSchema, create(AuthorizeResponseSchema, { allowed: true }));
  });

  // The shapes tollgate-service.ts and rate-limit-handlers.ts build.
  const now = 1_764_700_000_123;
  const limit = create(LimitStatusSchema, {
    name: "per-minute",
    by: LimitBy.KEY,
    kind: LimitKind.RATE,
    limit: 100n,
    remaining: 99n,
    reset: durationFromMs(600),
    window: durationFromMs(60_000),
  });
  const headers = [
    create(HeaderSchema, { name: "RateLimit-Policy", value: '"per-minute";q=100;w=60' }),
    create(HeaderSchema, { name: "RateLimit", value: '"per-minute";r=99;t=1' }),
  ];
  const identity = create(IdentitySchema, {
    keyId: "key_01HZY3",
    owner: "acme",
    tier: "pro",
    scopes: ["orders:read", "orders:write"],
    metadata: { team: "payments", région: "eu-west-1", "": "" },
    environment: "live",
  });
  const shapes: [string, DescMessage, Message][] = [
    [
      "Authorize allowed, with identity, hints and limits",
      AuthorizeResponseSchema,
      create(AuthorizeResponseSchema, {
        allowed: true,
        reason: Reason.OK,
        httpStatus: 200,
        identity,
        responseHeaders: headers,
        decisionId: "01JD2Y6Q8K3V5W7X9Z",
        hints: create(KeyHintsSchema, {
          expiresSoon: true,
          expireTime: timestampFromMs(now + 86_400_000),
          rotationDue: true,
        }),
        message: "allowed",
        endpoint: "orders",
        rateLimit: create(RateLimitResultSchema, {
          allowed: true,
          deciding: limit,
          limits: [limit],
        }),
      }),
    ],
    [
      "Authorize denied for a missing scope",
      AuthorizeResponseSchema,
      create(AuthorizeResponseSchema, {
        reason: Reason.INSUFFICIENT_SCOPE,
        httpStatus: 403,
        identity,
        decisionId: "01JD2Y6Q8K3V5W7X9Z",
        message: "the key lacks a required scope",
        missingScopes: ["admin", "orders:delete"],
      }),
    ],
    [
      "Authorize denied, unknown key",
      AuthorizeResponseSchema,
      create(AuthorizeResponseSchema, {
        reason: Reason.UNKNOWN_KEY,
        httpStatus: 401,
        responseHeaders: [create(HeaderSchema, { name: "WWW-Authenticate", value: "ApiKey" })],
        decisionId: "d",
        message: "unknown API key",
      }),
    ],
    [
      "Authorize blocked",
      AuthorizeResponseSchema,
      create(AuthorizeResponseSchema, {
        reason: Reason.BLOCKED,
        httpStatus: 429,
        decisionId: "d",
        rateLimit: create(RateLimitResultSchema, {
          blockedUntil: timestampFromMs(now + 30_000),
          retryAfter: durationFromMs(30_000),
        }),
        decidedLocally: true,
      }),
    ],
    [
      "CheckRateLimit allowed",
      CheckRateLimitResponseSchema,
      create(CheckRateLimitResponseSchema, {
        allowed: true,
        reason: Reason.OK,
        result: create(RateLimitResultSchema, { allowed: true, deciding: limit, limits: [limit] }),
        responseHeaders: headers,
        decisionId: "01JD2Y6Q8K3V5W7X9Z",
        httpStatus: 200,
      }),
    ],
    [
      "CheckRateLimit rate-limited",
      CheckRateLimitResponseSchema,
      create(CheckRateLimitResponseSchema, {
        reason: Reason.RATE_LIMITED,
        result: create(RateLimitResultSchema, {
          deciding: { ...limit, remaining: 0n, exceeded: true },
          limits: [
            { ...limit, remaining: 0n, exceeded: true },
            { ...limit, shadow: true },
          ],
          retryAfter: durationFromMs(1_250),
        }),
        responseHeaders: [...headers, create(HeaderSchema, { name: "Retry-After", value: "2" })],
        decisionId: "01JD2Y6Q8K3V5W7X9Z",
        httpStatus: 429,
      }),
    ],
    ["an empty message", CheckRateLimitResponseSchema, create(CheckRateLimitResponseSchema)],
    [
      "Envoy Check allowed",
      CheckResponseSchema,
      create(CheckResponseSchema, {
        status: create(StatusSchema, { code: 0 }),
        httpResponse: {
          case: "okResponse",
          value: {
            headers: ["key-id", "owner", "tier"].map((h) => envoyOption(`x-tollgate-${h}`, "v")),
            headersToRemove: ["x-api-key", "x-tollgate-environment"],
            responseHeadersToAdd: [envoyOption("RateLimit", '"per-minute";r=99;t=1')],
          },
        },
        dynamicMetadata: {
          key_id: "key_01",
          tier: "pro",
          owner: "",
          decision_id: "d",
          endpoint: "x",
        },
      }),
    ],
    [
      "Envoy Check denied",
      CheckResponseSchema,
      create(CheckResponseSchema, {
        status: create(StatusSchema, { code: 16, message: "unknown API key" }),
        httpResponse: {
          case: "deniedResponse",
          value: {
            status: { code: 401 },
            headers: [envoyOption("content-type", "application/json")],
            body: JSON.stringify({
              error: "UNKNOWN_KEY",
              message: "unknown API key",
              decision_id: "d",
            }),
          },
        },
      }),
    ],
    [
      "Envoy ShouldRateLimit over limit",
      RateLimitResponseSchema,
      create(RateLimitResponseSchema, {
        overallCode: RateLimitResponse_Code.OVER_LIMIT,
        statuses: [
          create(RateLimitResponse_DescriptorStatusSchema, { code: RateLimitResponse_Code.OK }),
          create(RateLimitResponse_DescriptorStatusSchema, {
            code: RateLimitResponse_Code.OVER_LIMIT,
            currentLimit: {
              name: "per-minute",
              requestsPerUnit: 100,
              unit: RateLimitResponse_RateLimit_Unit.MINUTE,
            },
            limitRemaining: 0,
            durationUntilReset: durationFromMs(12_345),
          }),
        ],
        responseHeadersToAdd: [{ key: "Retry-After", value: "13" }],
        dynamicMetadata: { decision_id: "01JD2Y6Q8K3V5W7X9Z" },
      }),
    ],
  ];
  function envoyOption(key: string, value: string) {
    return create(HeaderValueOptionSchema, {
      header: { key, value },
      appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
    });
  }
  for (const [name, desc, m] of shapes) {
    it(`encodes the real shape "${name}" byte for byte`, () => {
      expectSameBytes(desc, m);
      expect(equals(desc, fromBinary(desc, hand(desc, m)), m)).toBe(true);
    });
  }
  it("encodes a memoised (frozen) identity once and the same bytes every time", () => {
    const record = {
      id: "key_01HZY3",
      owner: "acme",
      tier: "pro",
      scopes: ["orders:read"],
      metadata: { région: "eu-west-1" },
      environment: "live",
    } as unknown as KeyRecord;
    const identity = identityToProto(record);
    expect(Object.isFrozen(identity)).toBe(true);
    expect(identityToProto(record)).toBe(identity);
    // A new record (an update) gets a new identity, never the old one's bytes.
    const updated = identityToProto({ ...record, owner: "globex" } as KeyRecord);
    for (const id of [identity, identity, updated, identity]) {
      const m = create(AuthorizeResponseSchema, { allowed: true, identity: id, decisionId: "d" });
      expectSameBytes(AuthorizeResponseSchema, m);
    }
    expect(
      fromBinary(
        AuthorizeResponseSchema,
        hand(AuthorizeResponseSchema, create(AuthorizeResponseSchema, { identity: updated })),
      ).identity?.owner,
    ).toBe("globex");
  });
});
