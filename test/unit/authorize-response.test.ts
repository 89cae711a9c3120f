import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import {
  AuthorizeResponseSchema,
  KeyHintsSchema,
} from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { authorizeResponse } from "../../src/services/authorize-response.js";
import { header, hintsToProto, ts } from "../../src/services/convert.js";

describe("authorizeResponse (the literal that replaces create on the hot path)", () => {
  it("has every non-message field of the schema, in create's order", () => {
    const literal = authorizeResponse({
      allowed: false,
      reason: Reason.UNSPECIFIED,
      httpStatus: 0,
      responseHeaders: [],
      decisionId: "",
      message: "",
      endpoint: "",
      missingScopes: [],
      decidedLocally: false,
    });
    const scalars = AuthorizeResponseSchema.fields
      .filter((f) => f.fieldKind !== "message")
      .map((f) => f.localName);
    expect(Object.keys(literal)).toEqual(["$typeName", ...scalars]);
    expect(literal).toStrictEqual(create(AuthorizeResponseSchema));
  });

  it("equals create(AuthorizeResponseSchema, fields) for any fields", () => {
    const reason = fc.constantFrom(
      ...Object.values(Reason).filter((v): v is Reason => typeof v === "number"),
    );
    fc.assert(
      fc.property(
        fc.record({
          allowed: fc.boolean(),
          reason,
          httpStatus: fc.integer({ min: 0, max: 599 }),
          responseHeaders: fc.array(
            fc.tuple(fc.string(), fc.string()).map(([n, v]) => header(n, v)),
            { maxLength: 3 },
          ),
          decisionId: fc.string(),
          message: fc.string(),
          endpoint: fc.string(),
          missingScopes: fc.array(fc.string(), { maxLength: 3 }),
          decidedLocally: fc.boolean(),
        }),
        (f) => {
          expect(authorizeResponse(f)).toStrictEqual(create(AuthorizeResponseSchema, f));
        },
      ),
      { numRuns: 500 },
    );
  });
  it("hintsToProto equals create(KeyHintsSchema, …) for any hints, the shared default one included", () => {
    const ms = fc.option(fc.integer({ min: 0, max: 4_000_000_000_000 }), { nil: undefined });
    fc.assert(
      fc.property(
        fc.record({
          expiresSoon: fc.boolean(),
          inGracePeriod: fc.boolean(),
          rotationDue: fc.boolean(),
          expiresAt: ms,
          graceEndsAt: ms,
        }),
        (h) => {
          const hints = { ...h };
          if (hints.expiresAt === undefined) delete hints.expiresAt;
          if (hints.graceEndsAt === undefined) delete hints.graceEndsAt;
          expect(hintsToProto(hints)).toStrictEqual(
            create(KeyHintsSchema, {
              expiresSoon: h.expiresSoon,
              expireTime: ts(h.expiresAt),
              inGracePeriod: h.inGracePeriod,
              graceEndTime: ts(h.graceEndsAt),
              rotationDue: h.rotationDue,
            }),
          );
        },
      ),
      { numRuns: 500 },
    );
    const none = { expiresSoon: false, inGracePeriod: false, rotationDue: false };
    expect(hintsToProto(none)).toBe(hintsToProto(none));
    expect(Object.isFrozen(hintsToProto(none))).toBe(true);
  });
});
