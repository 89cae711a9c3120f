/**
 * Credits through the API: a tier's plan and a key's own, spent by every
 * door (Authorize, CheckRateLimit, Envoy Check), 402 CREDITS_EXHAUSTED with
 * Retry-After until a refill that covers the cost, the balance in the
 * responses (Authorize 13, CheckRateLimit 8, GetKey's Key 18) and in the
 * RateLimit headers, top-up and set through UpdateKey (audited), and
 * INVALID_ARGUMENT naming each bad field. Memory store on a manual clock.
 */

import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { afterEach, describe, expect, it } from "vitest";
import { CheckRequestSchema } from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { RateLimitResponse_Code } from "../../src/gen/envoy/service/ratelimit/v3/rls_pb.js";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { CreditRefill, CreditRefillMode } from "../../src/gen/tollgate/v1/credits_pb.js";
import { EventType } from "../../src/gen/tollgate/v1/event_pb.js";
import { ImportOutcome } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { pollUntil } from "../helpers/clients.js";
import { createServiceHarness, type ServiceHarness } from "../helpers/service-deps.js";
import { violatedFields } from "./support.js";

const POLICY = `
version: 1
default_tier: free
tiers:
  free: {}
  metered:
    limits:
      - { name: per-key, by: key, rate: { requests: 100, per: 1m } }
    credits: { amount: 3, refill: daily }
endpoints:
  - { name: report, path: /v1/reports, cost: 2 }
envoy_ratelimit:
  - domain: edge
    descriptors:
      - key: remote_address
        rate_limit: { unit: minute, requests_per_unit: 100 }
`;

const DAY = 86_400_000;
const harnesses: ServiceHarness[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});

async function setUp() {
  const h = await createServiceHarness({ policyYaml: POLICY });
  harnesses.push(h);
  // 10:00 UTC: the next daily refill is 14 h away.
  h.clock.set(Date.UTC(2026, 2, 10, 10));
  const mint = async (o: Record<string, unknown> = {}) => {
    const r = await h.keys.createKey({ owner: "acme", tier: "metered", ...o }, h.auth);
    return { secret: r.secret, id: r.key?.id ?? "", key: r.key };
  };
  const authorize = (secret: string, path = "/") =>
    h.tollgate.authorize({ apiKey: secret, method: "GET", path, applyLimits: true });
  return { h, mint, authorize };
}

/** Epoch ms of a next_refill_time (NaN when unset, which fails any toBe). */
const refillAt = (t: Timestamp | undefined) => (t ? timestampMs(t) : Number.NaN);

const header = (list: { name: string; value: string }[], name: string) =>
  list.find((x) => x.name.toLowerCase() === name)?.value;

describe("credits through the API", () => {
  it("Authorize spends the tier's credits, shows the balance, then answers 402 until the refill", async () => {
    const { h, mint, authorize } = await setUp();
    const { secret } = await mint();
    const midnight = Date.UTC(2026, 2, 11);
    for (const balance of [2, 1, 0]) {
      const res = await authorize(secret);
      expect(res.allowed).toBe(true);
      expect(res.credits?.balance).toBe(BigInt(balance));
      expect(res.credits?.ownPlan).toBe(false);
      expect(res.credits?.plan?.refill).toBe(CreditRefill.DAILY);
      expect(refillAt(res.credits?.nextRefillTime)).toBe(midnight);
      // A quota policy in the RateLimit headers, whichever limit is tightest.
      expect(header(res.responseHeaders, "ratelimit-policy")).toContain('"credits";q=3;w=86400');
      expect(header(res.responseHeaders, "ratelimit")).toContain(
        `"credits";r=${balance};t=${14 * 3600}`,
      );
    }
    const denied = await authorize(secret);
    expect(denied).toMatchObject({
      allowed: false,
      reason: Reason.CREDITS_EXHAUSTED,
      httpStatus: 402,
      message: "the key's credits are exhausted",
    });
    expect(denied.credits?.balance).toBe(0n);
    expect(header(denied.responseHeaders, "retry-after")).toBe(String(14 * 3600));
    // The credits are not a limit in the result; the per-key limit was not charged.
    expect(denied.rateLimit?.limits.map((l) => [l.name, l.remaining])).toEqual([["per-key", 97n]]);
    expect(denied.rateLimit?.deciding).toBeUndefined();

    h.clock.set(midnight);
    const refilled = await authorize(secret);
    expect(refilled.allowed).toBe(true);
    expect(refilled.credits?.balance).toBe(2n);
  });

  it("CheckRateLimit and Envoy Check answer the same 402 for the same key", async () => {
    const { h, mint } = await setUp();
    const { secret, id } = await mint();
    // The endpoint costs 2: one call fits a balance of 3, the second does not.
    const first = await h.tollgate.checkRateLimit({
      keyId: id,
      path: "/v1/reports",
      method: "GET",
    });
    expect(first.allowed).toBe(true);
    expect(first.credits?.balance).toBe(1n);
    const second = await h.tollgate.checkRateLimit({
      keyId: id,
      path: "/v1/reports",
      method: "GET",
    });
    expect(second).toMatchObject({
      allowed: false,
      reason: Reason.CREDITS_EXHAUSTED,
      httpStatus: 402,
    });
    expect(second.credits?.balance).toBe(1n);
    const res = await h.envoyAuthz.check(
      create(CheckRequestSchema, {
        attributes: {
          request: {
            http: { method: "GET", path: "/v1/reports", headers: { "x-api-key": secret } },
          },
        },
      }),
    );
    expect(res.httpResponse.case).toBe("deniedResponse");
    if (res.httpResponse.case === "deniedResponse") {
      expect(res.httpResponse.value.status?.code).toBe(402);
      const headers = res.httpResponse.value.headers.map((o) => o.header?.key.toLowerCase());
      expect(headers).toContain("retry-after");
    }
    // A cost of 1 still fits the balance of 1.
    const one = await h.tollgate.checkRateLimit({ keyId: id, cost: 1 });
    expect(one.allowed).toBe(true);
    expect(one.credits?.balance).toBe(0n);
  });

  it("Envoy ShouldRateLimit spends the credits of the key a descriptor names: OVER_LIMIT when empty", async () => {
    const { h, mint } = await setUp();
    const { id } = await mint();
    const request = (hits = 1) => ({
      domain: "edge",
      hitsAddend: hits,
      descriptors: [
        { entries: [{ key: "remote_address", value: "192.0.2.7" }] },
        { entries: [{ key: "tollgate_key_id", value: id }] },
      ],
    });
    const ok = await h.envoyRateLimit.shouldRateLimit(request(2));
    expect(ok.overallCode).toBe(RateLimitResponse_Code.OK);
    expect(ok.statuses.map((s) => [s.code, s.currentLimit?.name, s.limitRemaining])).toEqual([
      [RateLimitResponse_Code.OK, "edge.remote_address", 98],
      [RateLimitResponse_Code.OK, "credits", 1],
    ]);
    const over = await h.envoyRateLimit.shouldRateLimit(request(2));
    expect(over.overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
    expect(over.statuses.map((s) => s.code)).toEqual([
      RateLimitResponse_Code.OK,
      RateLimitResponse_Code.OVER_LIMIT,
    ]);
    // All or none: the address limit was not charged by the refused request.
    expect(over.statuses[0]?.limitRemaining).toBe(98);
    const headers = Object.fromEntries(over.responseHeadersToAdd.map((x) => [x.key, x.value]));
    expect(headers["retry-after"]).toBe(String(14 * 3600));
    expect(headers.ratelimit).toContain('"credits";r=1');
    // An id that names no key spends no credits (ext_authz refuses unknown keys first).
    const stranger = await h.envoyRateLimit.shouldRateLimit({
      domain: "edge",
      descriptors: [{ entries: [{ key: "tollgate_key_id", value: "key_0000000000000000" }] }],
    });
    expect(stranger.overallCode).toBe(RateLimitResponse_Code.OK);
  });

  it("a key's own plan wins over its tier's; without refill a 402 has no Retry-After", async () => {
    const { h, mint, authorize } = await setUp();
    const { secret, id, key } = await mint({ credits: { amount: 1n } });
    expect(key?.credits?.ownPlan).toBe(true);
    expect(key?.credits?.plan?.amount).toBe(1n);
    expect((await authorize(secret)).credits?.balance).toBe(0n);
    const denied = await authorize(secret);
    expect(denied.httpStatus).toBe(402);
    expect(header(denied.responseHeaders, "retry-after")).toBeUndefined();
    expect(header(denied.responseHeaders, "ratelimit-policy")).toContain('"credits";q=1');
    expect(header(denied.responseHeaders, "ratelimit")).toContain('"credits";r=0');
    // A key of a tier without a plan has no credits at all.
    const free = await mint({ tier: "free" });
    const res = await authorize(free.secret);
    expect(res.allowed).toBe(true);
    expect(res.credits).toBeUndefined();
    expect((await h.keys.getKey({ id: free.id }, h.auth)).key?.credits).toBeUndefined();
    // Removing the own plan brings the tier's back.
    const upd = await h.keys.updateKey({ id, updateMask: { paths: ["credits"] } }, h.auth);
    expect(upd.key?.credits?.ownPlan).toBe(false);
    expect(upd.key?.credits?.plan?.amount).toBe(3n);
  });

  it("GetKey shows the balance without spending it; UpdateKey tops up and sets it, audited", async () => {
    const { h, mint, authorize } = await setUp();
    const { secret, id } = await mint();
    await authorize(secret);
    for (let i = 0; i < 2; i++) {
      const got = await h.keys.getKey({ id }, h.auth);
      expect(got.key?.credits?.balance).toBe(2n);
      expect(refillAt(got.key?.credits?.nextRefillTime)).toBe(Date.UTC(2026, 2, 11));
    }
    const version = (await h.keys.getKey({ id }, h.auth)).key?.version;
    const topped = await h.keys.updateKey(
      {
        id,
        updateMask: { paths: ["credits_change"] },
        creditsChange: { change: { case: "topUp", value: 10n } },
      },
      h.auth,
    );
    expect(topped.key?.credits?.balance).toBe(12n);
    // A balance change is not a record change: same version.
    expect(topped.key?.version).toBe(version);
    expect((await authorize(secret)).credits?.balance).toBe(11n);
    const set = await h.keys.updateKey(
      {
        id,
        updateMask: { paths: ["credits_change"] },
        creditsChange: { change: { case: "set", value: 0n } },
      },
      h.auth,
    );
    expect(set.key?.credits?.balance).toBe(0n);
    expect((await authorize(secret)).httpStatus).toBe(402);

    await h.deps.events.recorder.flush();
    const events = await h.keys.listEvents({ subject: id, type: EventType.KEY_UPDATED }, h.auth);
    expect(events.events.map((e) => e.attributes.credits).sort()).toEqual([
      "set 0 → 0",
      "top_up 10 → 12",
    ]);
    const audit = h
      .logText()
      .split("\n")
      .filter((l) => l.includes('"audit":"update"') && l.includes(id) && l.includes("credits"));
    expect(audit).toHaveLength(2);
  });

  it("a key's own plan survives export and import (in Key.credits); the balance stays behind", async () => {
    const pepper = randomBytes(32);
    const from = await createServiceHarness({ policyYaml: POLICY, pepper });
    const to = await createServiceHarness({ policyYaml: POLICY, pepper });
    harnesses.push(from, to);
    const plan = { amount: 7n, refill: CreditRefill.DAILY, mode: CreditRefillMode.ADD, cap: 70n };
    const made = await from.keys.createKey(
      { owner: "acme", tier: "metered", credits: plan },
      from.auth,
    );
    const page = await from.keys.exportKeys({}, from.auth);
    const fingerprint = page.pepperFingerprintPrefix;
    const res = await to.keys.importKeys(
      { keys: page.keys, pepperFingerprintPrefix: fingerprint },
      to.auth,
    );
    expect(res.results.map((r) => r.outcome)).toEqual([ImportOutcome.CREATED]);
    const got = await to.keys.getKey({ id: made.key?.id ?? "" }, to.auth);
    expect(got.key?.credits?.ownPlan).toBe(true);
    expect(got.key?.credits?.plan).toMatchObject({
      amount: 7n,
      cap: 70n,
      mode: CreditRefillMode.ADD,
    });
    expect(got.key?.credits?.balance).toBe(7n);
    const again = await to.keys.importKeys(
      { keys: page.keys, pepperFingerprintPrefix: fingerprint },
      to.auth,
    );
    expect(again.results.map((r) => r.outcome)).toEqual([ImportOutcome.UNCHANGED]);
  });

  it("notifications: a balance crossing its thresholds and running out alerts once per refill period", async () => {
    const h = await createServiceHarness({
      policyYaml: `${POLICY}notifications:\n  credits: { thresholds: [50, 100] }\n  credits_exhausted: true\n`,
    });
    harnesses.push(h);
    h.clock.set(Date.UTC(2026, 2, 10, 10));
    const { secret, key } = await h.keys.createKey({ owner: "acme", tier: "metered" }, h.auth);
    const spend = (n: number) =>
      Promise.all(
        Array.from({ length: n }, () =>
          h.tollgate.authorize({ apiKey: secret, method: "GET", path: "/", applyLimits: true }),
        ),
      );
    const rules = async (want: number) => {
      const { value } = await pollUntil(
        async () => (await h.keys.listAlerts({ pageSize: 100 }, h.auth)).alerts,
        (a) => a.length >= want,
        5000,
      );
      await new Promise((r) => setTimeout(r, 100));
      const again = (await h.keys.listAlerts({ pageSize: 100 }, h.auth)).alerts;
      expect(again).toHaveLength(value.length);
      return again.map((a) => `${a.rule} ${a.thresholdPercent} ${a.keyId}`).sort();
    };
    // 3 credits: the 2nd crosses 50 %, the 3rd 100 % and empties it; then refusals.
    for (let i = 0; i < 5; i++) await spend(1);
    const id = key?.id ?? "";
    expect(await rules(3)).toEqual([
      `credit-threshold 100 ${id}`,
      `credit-threshold 50 ${id}`,
      `credits-exhausted 100 ${id}`,
    ]);
    // The next period: the same crossings alert again, once.
    h.clock.set(Date.UTC(2026, 2, 11, 1));
    for (let i = 0; i < 5; i++) await spend(1);
    expect(await rules(6)).toHaveLength(6);
  });

  it("refuses bad plans and changes with INVALID_ARGUMENT naming each field", async () => {
    const { h, mint } = await setUp();
    const create = (credits: Record<string, unknown>) =>
      violatedFields(h.keys.createKey({ owner: "acme", credits }, h.auth));
    expect(await create({ amount: 10n ** 13n })).toEqual(["credits.amount"]);
    expect(await create({ amount: 5n, mode: CreditRefillMode.ADD })).toEqual([
      "credits.mode",
      "credits.cap",
    ]);
    expect(await create({ amount: 5n, refill: CreditRefill.MONTHLY, refillDay: 29 })).toEqual([
      "credits.refill_day",
    ]);
    expect(await create({ amount: 5n, refill: CreditRefill.DAILY, refillDay: 3 })).toEqual([
      "credits.refill_day",
    ]);
    expect(
      await create({ amount: 5n, refill: CreditRefill.DAILY, mode: CreditRefillMode.ADD, cap: 4n }),
    ).toEqual(["credits.cap"]);
    expect(await create({ amount: 5n, cap: 9n })).toEqual(["credits.cap"]);
    expect(await create({ amount: 5n, refill: 9 })).toEqual(["credits.refill"]);

    const { id } = await mint();
    const change = (creditsChange: Record<string, unknown> | undefined) =>
      violatedFields(
        h.keys.updateKey({ id, updateMask: { paths: ["credits_change"] }, creditsChange }, h.auth),
      );
    expect(await change({ change: { case: "topUp", value: 0n } })).toEqual([
      "credits_change.top_up",
    ]);
    expect(await change({ change: { case: "set", value: 10n ** 12n + 1n } })).toEqual([
      "credits_change.set",
    ]);
    expect(await change(undefined)).toEqual(["credits_change"]);
    const free = await mint({ tier: "free" });
    expect(
      await violatedFields(
        h.keys.updateKey(
          {
            id: free.id,
            updateMask: { paths: ["credits_change"] },
            creditsChange: { change: { case: "topUp", value: 5n } },
          },
          h.auth,
        ),
      ),
    ).toEqual(["credits_change"]);
  });

  it("monthly add plans refill on their day, up to the cap", async () => {
    const { h, mint, authorize } = await setUp();
    const { secret } = await mint({
      credits: {
        amount: 2n,
        refill: CreditRefill.MONTHLY,
        refillDay: 15,
        mode: CreditRefillMode.ADD,
        cap: 5n,
      },
    });
    const first = await authorize(secret);
    expect(first.credits?.balance).toBe(1n);
    expect(refillAt(first.credits?.nextRefillTime)).toBe(Date.UTC(2026, 2, 15));
    h.clock.set(Date.UTC(2026, 5, 20)); // four refills later (Mar 15 … Jun 15): 1 + 8, capped at 5
    expect((await authorize(secret)).credits?.balance).toBe(4n);
    h.clock.advance(DAY);
    expect((await authorize(secret)).credits?.balance).toBe(3n);
  });
});
