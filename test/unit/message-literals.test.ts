import { create, type DescMessage } from "@bufbuild/protobuf";
import { DurationSchema, durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  HeaderValueOptionSchema,
  HeaderValueSchema,
} from "../../src/gen/envoy/config/core/v3/base_pb.js";
import {
  CheckResponseSchema,
  DeniedHttpResponseSchema,
  OkHttpResponseSchema,
} from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import {
  RateLimitResponse_DescriptorStatusSchema,
  RateLimitResponse_RateLimitSchema,
  RateLimitResponseSchema,
} from "../../src/gen/envoy/service/ratelimit/v3/rls_pb.js";
import { HttpStatusSchema } from "../../src/gen/envoy/type/v3/http_status_pb.js";
import { StatusSchema } from "../../src/gen/google/rpc/status_pb.js";
import { HeaderSchema, Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { CreditsStateSchema } from "../../src/gen/tollgate/v1/credits_pb.js";
import {
  LimitBy,
  LimitKind,
  LimitStatusSchema,
  RateLimitResultSchema,
} from "../../src/gen/tollgate/v1/ratelimit_pb.js";
import { CheckRateLimitResponseSchema } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import {
  checkRateLimitResponse,
  durationMs,
  headerMessage,
  limitStatus,
  messageBuilder,
  rateLimitResult,
} from "../../src/services/message-literals.js";
import { messageArb } from "../fuzz/arbitraries.js";

const enumArb = <E extends object>(e: E) =>
  fc.constantFrom(...Object.values(e).filter((v): v is number => typeof v === "number"));
const durationArb = fc.integer({ min: 0, max: 10 ** 12 }).map(durationMs);
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
const statusInit = fc.record({
  name: fc.string(),
  by: enumArb(LimitBy),
  kind: enumArb(LimitKind),
  limit: fc.bigInt({ min: 0n, max: 2n ** 53n }),
  remaining: fc.bigInt({ min: 0n, max: 2n ** 53n }),
  reset: durationArb,
  window: durationArb,
  shadow: fc.boolean(),
  exceeded: fc.boolean(),
});
const statusArb = statusInit.map(limitStatus);
const resultInit = fc.record({
  allowed: fc.boolean(),
  deciding: maybe(statusArb),
  limits: fc.array(statusArb, { maxLength: 3 }),
  retryAfter: maybe(durationArb),
  blockedUntil: maybe(fc.integer({ min: 0, max: 4e12 }).map(timestampFromMs)),
});
const headerArb = fc.tuple(fc.string(), fc.string()).map(([n, v]) => headerMessage(n, v));

/** Every field of the schema that a builder given `init` with all fields set must have. */
const fieldNames = (schema: DescMessage) => ["$typeName", ...schema.fields.map((f) => f.localName)];

describe("message literals (create's result without create's descriptor walk)", () => {
  it("durationMs is durationFromMs, signs, fractions and zero included", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.integer({ min: -(10 ** 13), max: 10 ** 13 }),
          fc.double({ noNaN: true, min: -1e9, max: 1e9 }),
        ),
        (ms) => {
          expect(durationMs(ms)).toStrictEqual(durationFromMs(ms));
        },
      ),
      { numRuns: 2000 },
    );
    for (const ms of [0, -0, -1000, -5000, 1000, -0.5, 0.5, -1]) {
      // Object.is: a signed zero is a different nanos (it does not serialise).
      expect(Object.is(durationMs(ms).nanos, durationFromMs(ms).nanos)).toBe(true);
      expect(durationMs(ms).seconds).toBe(durationFromMs(ms).seconds);
    }
    expect(Object.keys(durationMs(1))).toEqual(fieldNames(DurationSchema));
  });

  it("headerMessage and limitStatus equal create, with every field", () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), statusInit, (n, v, s) => {
        expect(headerMessage(n, v)).toStrictEqual(create(HeaderSchema, { name: n, value: v }));
        expect(limitStatus(s)).toStrictEqual(create(LimitStatusSchema, s));
      }),
      { numRuns: 500 },
    );
    expect(new Set(Object.keys(headerMessage("a", "b")))).toEqual(
      new Set(fieldNames(HeaderSchema)),
    );
    fc.assert(
      fc.property(statusInit, (s) => {
        expect(new Set(Object.keys(limitStatus(s)))).toEqual(
          new Set(fieldNames(LimitStatusSchema)),
        );
      }),
      { numRuns: 20 },
    );
  });

  it("rateLimitResult and checkRateLimitResponse equal create, unset message fields absent", () => {
    const responseInit = fc.record({
      allowed: fc.boolean(),
      reason: enumArb(Reason),
      result: maybe(resultInit.map(rateLimitResult)),
      responseHeaders: fc.array(headerArb, { maxLength: 3 }),
      decisionId: fc.string(),
      httpStatus: fc.integer({ min: 0, max: 599 }),
      decidedLocally: fc.boolean(),
      credits: maybe(
        fc
          .record({ balance: fc.bigInt({ min: -(2n ** 53n), max: 2n ** 53n }) })
          .map((c) => create(CreditsStateSchema, c)),
      ),
    });
    fc.assert(
      fc.property(resultInit, responseInit, (r, c) => {
        expect(rateLimitResult(r)).toStrictEqual(create(RateLimitResultSchema, r));
        expect(checkRateLimitResponse(c)).toStrictEqual(create(CheckRateLimitResponseSchema, c));
      }),
      { numRuns: 500 },
    );
    // With every message field set, every field of the schema is there.
    const s = limitStatus({
      name: "n",
      by: LimitBy.KEY,
      kind: LimitKind.RATE,
      limit: 1n,
      remaining: 1n,
      reset: durationMs(1),
      window: durationMs(1),
      shadow: false,
      exceeded: false,
    });
    const full = rateLimitResult({
      allowed: true,
      deciding: s,
      limits: [s],
      retryAfter: durationMs(1),
      blockedUntil: timestampFromMs(1),
    });
    expect(new Set(Object.keys(full))).toEqual(new Set(fieldNames(RateLimitResultSchema)));
    const resp = checkRateLimitResponse({
      allowed: true,
      reason: Reason.OK,
      result: full,
      responseHeaders: [],
      decisionId: "d",
      httpStatus: 200,
      decidedLocally: false,
      credits: create(CreditsStateSchema),
    });
    expect(new Set(Object.keys(resp))).toEqual(new Set(fieldNames(CheckRateLimitResponseSchema)));
  });
  it.each([
    CheckResponseSchema,
    OkHttpResponseSchema,
    DeniedHttpResponseSchema,
    HeaderValueOptionSchema,
    HeaderValueSchema,
    StatusSchema,
    HttpStatusSchema,
    RateLimitResponseSchema,
    RateLimitResponse_DescriptorStatusSchema,
    RateLimitResponse_RateLimitSchema,
  ] as DescMessage[])("messageBuilder(%s) gives create's message for any fields", (schema) => {
    const build = messageBuilder(schema);
    fc.assert(
      fc.property(messageArb(schema, { secrets: [], maxDepth: 3 }), fc.boolean(), (m, sparse) => {
        // The fields of a random message, as a caller passes them (some left out, or undefined).
        const fields: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(m)) {
          if (k === "$typeName") continue;
          if (sparse && typeof v !== "object") fields[k] = undefined;
          else fields[k] = v;
        }
        const built = build(fields as never);
        expect(built).toStrictEqual(create(schema, fields as never));
        if (!sparse) expect(built).toStrictEqual(m);
      }),
      { numRuns: 150 },
    );
    // The defaults a copy shares are frozen: pushing onto one throws, never leaks into the next answer.
    const empty = build({}) as unknown as Record<string, unknown>;
    for (const v of Object.values(empty)) {
      if (Array.isArray(v)) expect(() => v.push(1)).toThrow(TypeError);
    }
  });
});
