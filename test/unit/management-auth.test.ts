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

describe("the failure throttle", () => {
  it("answers the first 10 failures in a 10 s window at once, then holds 50 ms doubling to the maximum", () => {
    const a = new ManagementAuth([{ name: "ci", token: CI }], { maxDelayMs: 1000 });
    const holds = Array.from({ length: 17 }, () => a.failed(0));
    expect(holds).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 50, 100, 200, 400, 800, 1000, 1000]);
    // A new window starts over.
    expect(a.failed(10_001)).toBe(0);
  });

  it("never holds with maxDelayMs 0", () => {
    const a = new ManagementAuth([{ name: "ci", token: CI }], { maxDelayMs: 0 });
    expect(Array.from({ length: 30 }, () => a.failed(0)).every((h) => h === 0)).toBe(true);
  });

  it("reports the failures since the last report at most once per interval", () => {
    const a = new ManagementAuth([{ name: "ci", token: CI }]);
    expect(a.takeReport(0, 10_000)).toBe(0);
    for (let i = 0; i < 5; i++) a.failed(0);
    expect(a.takeReport(0, 10_000)).toBe(5);
    a.failed(1);
    expect(a.takeReport(5_000, 10_000)).toBe(0);
    expect(a.takeReport(10_000, 10_000)).toBe(1);
  });
});

describe("dev mode refuses foreign callers (DNS rebinding)", () => {
  const open = new ManagementAuth([]);
  const h = (o: Record<string, string>) => new Headers(o);
  it("accepts loopback Host and Origin, or none", () => {
    const ok: Record<string, string>[] = [
      {},
      { host: "localhost:50051" },
      { host: "127.0.0.1" },
      { host: "[::1]:8080" },
      { host: "api.localhost:1" },
      { host: "localhost:50051", origin: "http://127.0.0.1:3000" },
    ];
    for (const o of ok) {
      expect(open.check(h(o)), JSON.stringify(o)).toBe("dev-mode");
    }
  });
  it("refuses a foreign Host or Origin with PERMISSION_DENIED", () => {
    const foreign: Record<string, string>[] = [
      { host: "evil.example" },
      { host: "127.0.0.1.evil.example:80" },
      { host: "localhost.evil.example" },
      { host: "localhost", origin: "https://evil.example" },
      { host: "localhost", origin: "null" },
    ];
    for (const o of foreign) {
      let code: Code | undefined;
      try {
        open.check(h(o));
      } catch (err) {
        code = ConnectError.from(err).code;
      }
      expect(code, JSON.stringify(o)).toBe(Code.PermissionDenied);
    }
  });
});

describe("ManagementAuth with a read-only token", () => {
  const VIEW = "view-token-0123456789abcdef";
  const mixed = new ManagementAuth([
    { name: "ci", token: CI },
    { name: "viewer", token: VIEW, readOnly: true },
  ]);

  it("answers a read with the token's name and refuses a change PERMISSION_DENIED", () => {
    expect(mixed.check(headers(`Bearer ${VIEW}`), "read")).toBe("viewer");
    let caught: unknown;
    try {
      mixed.check(headers(`Bearer ${VIEW}`), "change");
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConnectError);
    expect((caught as ConnectError).code).toBe(Code.PermissionDenied);
    expect(String((caught as ConnectError).cause)).toBe("MANAGEMENT_TOKEN_READ_ONLY");
  });

  it("treats a call that does not say what it needs as a change", () => {
    expect(() => mixed.check(headers(`Bearer ${VIEW}`))).toThrow(/read-only/);
    expect(mixed.check(headers(`Bearer ${CI}`))).toBe("ci");
    expect(mixed.check(headers(`Bearer ${CI}`), "read")).toBe("ci");
  });
});
