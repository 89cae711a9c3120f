/**
 * Authorize through the real handlers: every reason with its HTTP status, the
 * identity on 403s, the key taken from the headers map, lifecycle hints and
 * decision ids. A denial is data in an OK response, never an RPC error.
 */
import { durationFromMs, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import type { AuthorizeResponse } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { generateSecret } from "../../src/keys/key-format.js";
import { createServiceHarness, type ServiceHarness } from "../helpers/service-deps.js";
import { EXAMPLE_POLICY } from "./support.js";

const DAY = 86_400_000;
let h: ServiceHarness;

beforeEach(async () => {
  // Every decision logged: the secret scan checks each decision's line is there.
  h = await createServiceHarness({
    policyYaml: EXAMPLE_POLICY,
    env: { TOLLGATE_ACCESS_LOG: "all" },
  });
});
afterEach(() => h.close());

async function mint(extra: Parameters<ServiceHarness["keys"]["createKey"]>[0] = {}) {
  const r = await h.keys.createKey(
    { owner: "acme", scopes: ["orders:read"], metadata: { team: "web" }, ...extra },
    h.auth,
  );
  return { secret: r.secret, id: r.key?.id ?? "" };
}

function header(res: AuthorizeResponse, name: string): string | undefined {
  return res.responseHeaders.find((x) => x.name === name)?.value;
}

describe("Authorize decisions", () => {
  it("allows a live key with its identity, endpoint and a fresh decision id", async () => {
    const { secret, id } = await mint();
    const res = await h.tollgate.authorize({
      apiKey: secret,
      method: "GET",
      path: "/v1/orders",
      clientIp: "203.0.113.7",
    });
    expect(res.allowed).toBe(true);
    expect(res.reason).toBe(Reason.OK);
    expect(res.httpStatus).toBe(200);
    expect(res.endpoint).toBe("list-orders");
    expect(res.identity).toMatchObject({
      keyId: id,
      owner: "acme",
      tier: "free",
      scopes: ["orders:read"],
      metadata: { team: "web" },
      environment: "live",
    });
    expect(res.missingScopes).toEqual([]);
    expect(res.responseHeaders).toEqual([]);
    expect(res.decisionId).toMatch(/^[0-9a-f]{24}$/);
    // The id starts with the decision time (ms, hex), so ids sort by time.
    expect(Number.parseInt(res.decisionId.slice(0, 12), 16)).toBe(h.clock.now());
    const again = await h.tollgate.authorize({ apiKey: secret });
    expect(again.decisionId).not.toBe(res.decisionId);
  });

  it("answers 401 MISSING_KEY without a key, with a bare WWW-Authenticate challenge", async () => {
    const res = await h.tollgate.authorize({ method: "GET", path: "/v1/orders" });
    expect(res).toMatchObject({
      allowed: false,
      reason: Reason.MISSING_KEY,
      httpStatus: 401,
      endpoint: "list-orders",
    });
    expect(res.identity).toBeUndefined();
    expect(res.hints).toBeUndefined();
    expect(res.decisionId).toMatch(/^[0-9a-f]{24}$/);
    expect(header(res, "www-authenticate")).toBe('ApiKey realm="tollgate"');
  });

  it("answers 401 MALFORMED_KEY for a key of the wrong shape or checksum", async () => {
    const { secret } = await mint();
    const typo = `${secret.slice(0, -1)}${secret.endsWith("A") ? "B" : "A"}`;
    for (const bad of ["tg_live_abc", "sk_live_123", typo, `${secret}x`, "x".repeat(300)]) {
      const res = await h.tollgate.authorize({ apiKey: bad });
      expect(res, bad.slice(0, 40)).toMatchObject({
        allowed: false,
        reason: Reason.MALFORMED_KEY,
        httpStatus: 401,
      });
      expect(res.identity).toBeUndefined();
      expect(header(res, "www-authenticate")).toBe('ApiKey realm="tollgate", error="invalid_key"');
    }
  });

  it("answers 401 UNKNOWN_KEY for a well-formed key nobody issued", async () => {
    const res = await h.tollgate.authorize({ apiKey: generateSecret("live") });
    expect(res).toMatchObject({ allowed: false, reason: Reason.UNKNOWN_KEY, httpStatus: 401 });
    expect(res.identity).toBeUndefined();
  });

  it("answers 401 EXPIRED_KEY once the expiry passes", async () => {
    const { secret } = await mint({ expireTime: timestampFromMs(h.clock.now() + 3_600_000) });
    expect((await h.tollgate.authorize({ apiKey: secret })).allowed).toBe(true);
    h.clock.advance(3_600_000);
    const res = await h.tollgate.authorize({ apiKey: secret });
    expect(res).toMatchObject({ allowed: false, reason: Reason.EXPIRED_KEY, httpStatus: 401 });
    expect(res.identity).toBeUndefined();
  });

  it("answers 401 REVOKED_KEY at once after a revocation, even for a cached key", async () => {
    const { secret, id } = await mint();
    expect((await h.tollgate.authorize({ apiKey: secret })).allowed).toBe(true);
    await h.keys.revokeKey({ id, reason: "leaked" }, h.auth);
    const res = await h.tollgate.authorize({ apiKey: secret });
    expect(res).toMatchObject({ allowed: false, reason: Reason.REVOKED_KEY, httpStatus: 401 });
    expect(res.identity).toBeUndefined();
  });

  it("answers 403 IP_DENIED with the identity, for deny lists and allow lists", async () => {
    const allow = await mint({ ipAllow: ["10.0.0.0/8"] });
    const deny = await mint({ ipDeny: ["203.0.113.0/24"] });
    expect(
      (await h.tollgate.authorize({ apiKey: allow.secret, clientIp: "10.1.2.3" })).allowed,
    ).toBe(true);
    for (const [key, ip] of [
      [allow, "192.0.2.1"],
      [allow, ""], // an allow list needs a client IP
      [deny, "203.0.113.9"],
    ] as const) {
      const res = await h.tollgate.authorize({ apiKey: key.secret, clientIp: ip });
      expect(res, ip).toMatchObject({
        allowed: false,
        reason: Reason.IP_DENIED,
        httpStatus: 403,
      });
      expect(res.identity?.keyId).toBe(key.id);
      expect(header(res, "www-authenticate")).toBeUndefined();
    }
  });

  it("answers 403 INSUFFICIENT_SCOPE with the identity and the missing scopes", async () => {
    const { secret, id } = await mint();
    const byEndpoint = await h.tollgate.authorize({
      apiKey: secret,
      method: "POST",
      path: "/v1/orders",
    });
    expect(byEndpoint).toMatchObject({
      allowed: false,
      reason: Reason.INSUFFICIENT_SCOPE,
      httpStatus: 403,
      endpoint: "create-order",
      missingScopes: ["orders:write"],
    });
    expect(byEndpoint.identity?.keyId).toBe(id);
    const byRequest = await h.tollgate.authorize({
      apiKey: secret,
      requiredScopes: ["orders:read", "admin"],
    });
    expect(byRequest).toMatchObject({
      reason: Reason.INSUFFICIENT_SCOPE,
      httpStatus: 403,
      missingScopes: ["admin"],
    });
    expect(byRequest.identity?.owner).toBe("acme");
  });
});

describe("Authorize takes the key from the headers map", () => {
  it("reads x-api-key case-insensitively when api_key is empty", async () => {
    const { secret, id } = await mint();
    for (const name of ["x-api-key", "X-API-KEY", "X-Api-Key"]) {
      const res = await h.tollgate.authorize({ headers: { accept: "*/*", [name]: secret } });
      expect(res.allowed, name).toBe(true);
      expect(res.identity?.keyId).toBe(id);
    }
  });

  it("prefers api_key over the headers map", async () => {
    const { secret } = await mint();
    const res = await h.tollgate.authorize({
      apiKey: secret,
      headers: { "x-api-key": "tg_live_garbage" },
    });
    expect(res.allowed).toBe(true);
  });

  it("treats two x-api-key entries as MALFORMED_KEY, even if both hold valid keys", async () => {
    const a = await mint();
    const b = await mint();
    const res = await h.tollgate.authorize({
      headers: { "x-api-key": a.secret, "X-Api-Key": b.secret },
    });
    expect(res).toMatchObject({ allowed: false, reason: Reason.MALFORMED_KEY, httpStatus: 401 });
  });

  it("answers MISSING_KEY when the headers carry no x-api-key", async () => {
    const res = await h.tollgate.authorize({ headers: { authorization: "Bearer abc" } });
    expect(res.reason).toBe(Reason.MISSING_KEY);
  });
});

describe("Authorize lifecycle hints", () => {
  it("hints expires_soon within the warning window (7 days by default), with the expiry", async () => {
    const soon = h.clock.now() + 3 * DAY;
    const s = await mint({ expireTime: timestampFromMs(soon) });
    const later = await mint({ expireTime: timestampFromMs(h.clock.now() + 30 * DAY) });
    const never = await mint();
    const a = await h.tollgate.authorize({ apiKey: s.secret });
    expect(a.hints?.expiresSoon).toBe(true);
    expect(timestampMs(a.hints?.expireTime ?? timestampFromMs(0))).toBe(soon);
    const b = await h.tollgate.authorize({ apiKey: later.secret });
    expect(b.hints).toMatchObject({ expiresSoon: false, inGracePeriod: false, rotationDue: false });
    const c = await h.tollgate.authorize({ apiKey: never.secret });
    expect(c.hints?.expiresSoon).toBe(false);
    expect(c.hints?.expireTime).toBeUndefined();
    // 24 days later the 30-day key is inside the window too.
    h.clock.advance(24 * DAY);
    expect((await h.tollgate.authorize({ apiKey: later.secret })).hints?.expiresSoon).toBe(true);
  });

  it("hints in_grace_period and rotation_due for the previous secret until the grace ends", async () => {
    const { secret: old, id } = await mint();
    const rotated = await h.tollgate.rotateKey(
      { keyId: id, gracePeriod: durationFromMs(3_600_000) },
      h.auth,
    );
    const graceEnd = h.clock.now() + 3_600_000;
    expect(timestampMs(rotated.graceEndTime ?? timestampFromMs(0))).toBe(graceEnd);
    const viaOld = await h.tollgate.authorize({ apiKey: old });
    expect(viaOld.allowed).toBe(true);
    expect(viaOld.hints).toMatchObject({ inGracePeriod: true, rotationDue: true });
    expect(timestampMs(viaOld.hints?.graceEndTime ?? timestampFromMs(0))).toBe(graceEnd);
    const viaNew = await h.tollgate.authorize({ apiKey: rotated.secret });
    expect(viaNew.hints).toMatchObject({ inGracePeriod: false, rotationDue: false });
    expect(viaNew.hints?.graceEndTime).toBeUndefined();

    h.clock.advance(3_600_000);
    const after = await h.tollgate.authorize({ apiKey: old });
    expect(after).toMatchObject({ allowed: false, reason: Reason.UNKNOWN_KEY, httpStatus: 401 });
    expect((await h.tollgate.authorize({ apiKey: rotated.secret })).allowed).toBe(true);
  });

  it("hints rotation_due once the secret is older than the rotation age (90 days by default)", async () => {
    const { secret } = await mint();
    h.clock.advance(90 * DAY - 1);
    expect((await h.tollgate.authorize({ apiKey: secret })).hints?.rotationDue).toBe(false);
    h.clock.advance(1);
    const res = await h.tollgate.authorize({ apiKey: secret });
    expect(res.allowed).toBe(true);
    expect(res.hints).toMatchObject({ rotationDue: true, inGracePeriod: false });
  });
});

describe("Authorize never leaks a secret", () => {
  it("keeps every presented secret out of responses and the log", async () => {
    const { secret } = await mint();
    const unknown = generateSecret("live");
    const responses = [
      await h.tollgate.authorize({ apiKey: secret }),
      await h.tollgate.authorize({ apiKey: unknown }),
      await h.tollgate.authorize({ headers: { "x-api-key": secret } }),
      await h.tollgate.authorize({ apiKey: `${secret}x` }),
    ];
    const text = JSON.stringify(responses, (_k, v) => (typeof v === "bigint" ? String(v) : v));
    for (const s of [secret, unknown]) {
      expect(text).not.toContain(s);
      expect(h.logText()).not.toContain(s);
    }
    // The access log has a line per decision, with its id.
    for (const r of responses) expect(h.logText()).toContain(r.decisionId);
  });
});
