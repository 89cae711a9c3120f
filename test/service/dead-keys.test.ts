/**
 * A revoked or expired key is refused on every path that takes it — by id
 * (CheckRateLimit) as by secret (Authorize, with and without limits) — with
 * its reason and 401, and nothing is charged: the owner's shared quota shows
 * only the requests made while the key was alive.
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { EventType } from "../../src/gen/tollgate/v1/event_pb.js";
import { createServiceHarness, type ServiceHarness } from "../helpers/service-deps.js";

// One quota per owner, so a second key of the same owner reads what was charged.
const POLICY = `
version: 1
default_tier: free
tiers:
  free:
    limits:
      - name: owner-daily
        by: owner
        quota: { requests: 10, per: day }
endpoints:
  - name: search
    method: GET
    path: /v1/search
`;

let h: ServiceHarness;
beforeEach(async () => {
  h = await createServiceHarness({ policyYaml: POLICY });
});
afterEach(() => h.close());

async function mint(expiresAt?: number) {
  const r = await h.keys.createKey(
    { owner: "acme", ...(expiresAt !== undefined && { expireTime: timestampFromMs(expiresAt) }) },
    h.auth,
  );
  return { secret: r.secret, id: r.key?.id ?? "" };
}

/** What the owner's quota has left, read through a live key without charging much. */
async function ownerRemaining(liveId: string): Promise<bigint | undefined> {
  const r = await h.tollgate.checkRateLimit({ keyId: liveId, endpoint: "search" });
  expect(r.allowed).toBe(true);
  // This read itself costs one.
  return (r.result?.limits[0]?.remaining ?? 0n) + 1n;
}

describe("CheckRateLimit by the id of a dead key", () => {
  it("refuses a revoked key's id at once: REASON_REVOKED_KEY, 401, nothing charged", async () => {
    const dead = await mint();
    const live = await mint();
    const first = await h.tollgate.checkRateLimit({ keyId: dead.id, endpoint: "search" });
    expect(first).toMatchObject({ allowed: true, reason: Reason.OK, httpStatus: 200 });
    expect(first.result?.limits[0]?.remaining).toBe(9n);

    await h.keys.revokeKey({ id: dead.id, reason: "leaked" }, h.auth);
    for (let i = 0; i < 5; i++) {
      const r = await h.tollgate.checkRateLimit({ keyId: dead.id, endpoint: "search" });
      expect(r).toMatchObject({ allowed: false, reason: Reason.REVOKED_KEY, httpStatus: 401 });
      expect(r.result?.limits ?? []).toEqual([]);
      expect(r.responseHeaders).toContainEqual(
        expect.objectContaining({
          name: "www-authenticate",
          value: 'ApiKey realm="tollgate", error="invalid_key"',
        }),
      );
      expect(r.decisionId).toMatch(/^[0-9a-f]{24}$/);
    }
    // Only the one request made while the key was alive was charged.
    expect(await ownerRemaining(live.id)).toBe(9n);
  });

  it("refuses an expired key's id: REASON_EXPIRED_KEY, 401, nothing charged", async () => {
    const dead = await mint(h.clock.now() + 60_000);
    const live = await mint();
    expect((await h.tollgate.checkRateLimit({ keyId: dead.id, endpoint: "search" })).allowed).toBe(
      true,
    );
    h.clock.advance(60_000);
    const r = await h.tollgate.checkRateLimit({ keyId: dead.id, endpoint: "search" });
    expect(r).toMatchObject({ allowed: false, reason: Reason.EXPIRED_KEY, httpStatus: 401 });
    expect(await ownerRemaining(live.id)).toBe(9n);
  });

  it("counts the refusal as a deny decision and records an auth_failure event", async () => {
    const dead = await mint();
    await h.keys.revokeKey({ id: dead.id }, h.auth);
    await h.tollgate.checkRateLimit({ keyId: dead.id, endpoint: "search" });
    const metrics = await h.deps.metrics.registry.metrics();
    expect(metrics).toMatch(
      /tollgate_decisions_total\{[^}]*rpc="CheckRateLimit"[^}]*decision="deny"[^}]*reason="REVOKED_KEY"[^}]*\} 1/,
    );
    await h.deps.events.recorder.flush();
    const ev = await h.keys.listEvents({ subject: dead.id, type: EventType.AUTH_FAILURE }, h.auth);
    expect(ev.events).toHaveLength(1);
    expect(ev.events[0]?.attributes).toMatchObject({
      reason: "REVOKED_KEY",
      rpc: "CheckRateLimit",
    });
  });
});

describe("Authorize with apply_limits for a dead key", () => {
  it("refuses a revoked key before any limit: REASON_REVOKED_KEY, 401, no rate_limit, nothing charged", async () => {
    const dead = await mint();
    const live = await mint();
    const ok = await h.tollgate.authorize({
      apiKey: dead.secret,
      endpoint: "search",
      applyLimits: true,
    });
    expect(ok.allowed).toBe(true);
    await h.keys.revokeKey({ id: dead.id }, h.auth);
    for (let i = 0; i < 3; i++) {
      const r = await h.tollgate.authorize({
        apiKey: dead.secret,
        endpoint: "search",
        applyLimits: true,
      });
      expect(r).toMatchObject({ allowed: false, reason: Reason.REVOKED_KEY, httpStatus: 401 });
      expect(r.rateLimit).toBeUndefined();
    }
    expect(await ownerRemaining(live.id)).toBe(9n);
  });

  it("refuses an expired key before any limit: REASON_EXPIRED_KEY, 401, nothing charged", async () => {
    const dead = await mint(h.clock.now() + 1000);
    const live = await mint();
    h.clock.advance(1000);
    const r = await h.tollgate.authorize({
      apiKey: dead.secret,
      endpoint: "search",
      applyLimits: true,
    });
    expect(r).toMatchObject({ allowed: false, reason: Reason.EXPIRED_KEY, httpStatus: 401 });
    expect(await ownerRemaining(live.id)).toBe(10n);
  });
});
