/** Scope matching: exact scopes, prefix wildcards and `*`. */
import { describe, expect, it } from "vitest";
import { grants, missingScopes } from "../../src/keys/scopes.js";

describe("grants", () => {
  it("grants a scope held exactly, and nothing else", () => {
    expect(grants(["orders:read"], "orders:read")).toBe(true);
    expect(grants(["orders:read"], "orders:write")).toBe(false);
    expect(grants(["orders:read"], "orders:read:all")).toBe(false);
    expect(grants(["orders:read"], "Orders:read")).toBe(false);
    expect(grants([], "orders:read")).toBe(false);
  });

  it("lets `prefix*` grant every scope with that prefix", () => {
    expect(grants(["orders:*"], "orders:read")).toBe(true);
    expect(grants(["orders:*"], "orders:refunds:create")).toBe(true);
    expect(grants(["orders:*"], "orders:")).toBe(true);
    expect(grants(["orders:*"], "orders")).toBe(false);
    expect(grants(["orders:*"], "billing:read")).toBe(false);
    expect(grants(["orders:*"], "xorders:read")).toBe(false);
  });

  it("lets `*` grant everything", () => {
    for (const s of ["orders:read", "admin", "*", "a:b:c"]) expect(grants(["*"], s)).toBe(true);
  });

  it("does not let a narrow grant satisfy a wildcard requirement", () => {
    expect(grants(["orders:read", "orders:write"], "orders:*")).toBe(false);
    expect(grants(["orders:*"], "*")).toBe(false);
    expect(grants(["orders:*"], "orders:*")).toBe(true);
  });

  it("treats `*` in the middle of a grant literally", () => {
    expect(grants(["orders:*:read"], "orders:x:read")).toBe(false);
    expect(grants(["orders:*:read"], "orders:*:read")).toBe(true);
  });
});

describe("missingScopes", () => {
  it("lists the required scopes not granted, in order, once each", () => {
    expect(
      missingScopes(
        ["orders:*", "users:read"],
        ["orders:read", "billing:refund", "users:write", "billing:refund", "users:read"],
      ),
    ).toEqual(["billing:refund", "users:write"]);
  });

  it("is empty when everything is granted or nothing is required", () => {
    expect(missingScopes(["*"], ["a", "b:c"])).toEqual([]);
    expect(missingScopes([], [])).toEqual([]);
    expect(missingScopes(["a"], new Set(["a"]))).toEqual([]);
  });
});
