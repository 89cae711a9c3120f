/**
 * Management RPCs need `authorization: Bearer <token>`; with no token
 * configured (loopback dev mode) they are open.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ManagementAuth } from "../../src/services/management-auth.js";

const CI = "ci-token-0123456789abcdef";
const OPS = "ops-token-fedcba9876543210";
const auth = new ManagementAuth([
  { name: "ci", token: CI },
  { name: "ops", token: OPS },
]);
const headers = (authorization?: string) =>
  new Headers(authorization === undefined ? {} : { authorization });

/** The registry code of the error `check` throws, asserting it is UNAUTHENTICATED. */
function refusal(h: Headers): string {
  try {
    auth.check(h);
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectError);
    const e = err as ConnectError;
    expect(e.code).toBe(Code.Unauthenticated);
    for (const secret of [CI, OPS]) expect(e.message).not.toContain(secret);
    return String(e.cause);
  }
  throw new Error("the token was accepted");
}

describe("ManagementAuth", () => {
  it("accepts each configured token and names who acted", () => {
    expect(auth.open).toBe(false);
    expect(auth.check(headers(`Bearer ${CI}`))).toBe("ci");
    expect(auth.check(headers(`Bearer ${OPS}`))).toBe("ops");
  });

  it("reads the Bearer scheme case-insensitively, with extra spaces", () => {
    expect(auth.check(headers(`bearer ${CI}`))).toBe("ci");
    expect(auth.check(headers(`BEARER   ${CI}`))).toBe("ci");
    expect(auth.check(headers(`Bearer ${CI}  `))).toBe("ci");
  });

  it("asks for the token when the header is missing or empty", () => {
    expect(refusal(headers())).toBe("MANAGEMENT_TOKEN_REQUIRED");
    expect(refusal(headers(""))).toBe("MANAGEMENT_TOKEN_REQUIRED");
  });

  it("refuses a wrong token, a near miss, another scheme or a malformed header", () => {
    for (const h of [
      "Bearer wrong-token-0123456789abcdef",
      `Bearer ${CI.slice(0, -1)}`,
      `Bearer ${CI}x`,
      `Bearer ${CI.toUpperCase()}`,
      `Bearer ${CI} ${OPS}`,
      `Basic ${Buffer.from(`ci:${CI}`).toString("base64")}`,
      CI,
      "Bearer",
      "Bearer ",
      `Token ${CI}`,
    ]) {
      expect(refusal(headers(h)), h).toBe("MANAGEMENT_TOKEN_INVALID");
    }
  });

  it("with no token configured, is open (dev mode) whatever is sent", () => {
    const open = new ManagementAuth([]);
    expect(open.open).toBe(true);
    expect(open.check(headers())).toBe("dev-mode");
    expect(open.check(headers("Bearer anything"))).toBe("dev-mode");
    expect(open.check(headers("garbage"))).toBe("dev-mode");
  });
});
