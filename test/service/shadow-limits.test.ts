/**
 * Shadow mode never denies and never fails: a shadow limit whose dimension the
 * request lacks is skipped for that request (counted and logged at debug),
 * while an enforced limit without its dimension stays INVALID_ARGUMENT.
 */
import { Code } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { createServiceHarness, type ServiceHarness } from "../helpers/service-deps.js";
import { failure, violatedFields } from "./support.js";

const POLICY = `
version: 1
default_tier: free
tiers:
  free:
    limits:
      - name: per-key
        by: key
        rate: { requests: 100, per: 1s }
endpoints:
  - name: watch
    method: GET
    path: /v1/watch
    limits:
      - name: watch-per-ip
        by: ip
        rate: { requests: 1, per: 1h }
        mode: shadow
      - name: watch-per-caller
        by: subject
        rate: { requests: 1, per: 1h }
        mode: shadow
  - name: strict
    method: GET
    path: /v1/strict
    limits:
      - name: strict-per-ip
        by: ip
        rate: { requests: 5, per: 1h }
`;

let h: ServiceHarness;
beforeEach(async () => {
  h = await createServiceHarness({ policyYaml: POLICY });
});
afterEach(() => h.close());

async function skippedCount(rule: string): Promise<number> {
  const m = await h.deps.metrics.registry
    .getSingleMetric("tollgate_ratelimit_shadow_skipped_total")
    ?.get();
  return m?.values.find((v) => v.labels.rule === rule)?.value ?? 0;
}

describe("a shadow limit whose dimension is missing", () => {
  it("is skipped by CheckRateLimit: allowed, not in the result, counted and logged at debug", async () => {
    const { key } = await h.keys.createKey({ owner: "acme" }, h.auth);
    const r = await h.tollgate.checkRateLimit({ keyId: key?.id ?? "", endpoint: "watch" });
    expect(r).toMatchObject({ allowed: true, reason: Reason.OK, httpStatus: 200 });
    expect(r.result?.limits.map((l) => l.name)).toEqual(["per-key"]);
    expect(await skippedCount("watch-per-ip")).toBe(1);
    expect(await skippedCount("watch-per-caller")).toBe(1);
    const line = h
      .logText()
      .split("\n")
      .find((l) => l.includes('"shadow":"watch-per-ip"') && l.includes("skipped"));
    expect(line && JSON.parse(line)).toMatchObject({
      level: "debug",
      rpc: "CheckRateLimit",
      by: "ip",
    });
  });

  it("is skipped by Authorize(apply_limits) too, which allows the request", async () => {
    const { secret } = await h.keys.createKey({ owner: "acme" }, h.auth);
    for (let i = 0; i < 3; i++) {
      const r = await h.tollgate.authorize({
        apiKey: secret,
        endpoint: "watch",
        applyLimits: true,
      });
      expect(r).toMatchObject({ allowed: true, reason: Reason.OK, httpStatus: 200 });
    }
    expect(await skippedCount("watch-per-ip")).toBe(3);
  });

  it("still applies, as shadow, when the dimension is given: reported, never denying", async () => {
    const { key } = await h.keys.createKey({ owner: "acme" }, h.auth);
    const req = { keyId: key?.id ?? "", endpoint: "watch", clientIp: "203.0.113.9", subject: "u1" };
    expect((await h.tollgate.checkRateLimit(req)).allowed).toBe(true);
    const second = await h.tollgate.checkRateLimit(req);
    expect(second.allowed).toBe(true);
    const shadow = second.result?.limits.find((l) => l.name === "watch-per-ip");
    expect(shadow).toMatchObject({ shadow: true, exceeded: true });
    expect(await skippedCount("watch-per-ip")).toBe(0);
  });
});

describe("an enforced limit whose dimension is missing", () => {
  it("is still INVALID_ARGUMENT naming the field, and nothing is charged", async () => {
    const { key, secret } = await h.keys.createKey({ owner: "acme" }, h.auth);
    const id = key?.id ?? "";
    expect(
      await violatedFields(h.tollgate.checkRateLimit({ keyId: id, endpoint: "strict" })),
    ).toEqual(["client_ip"]);
    const e = await failure(
      h.tollgate.authorize({ apiKey: secret, endpoint: "strict", applyLimits: true }),
    );
    expect(e.code).toBe(Code.InvalidArgument);
    const ok = await h.tollgate.checkRateLimit({
      keyId: id,
      endpoint: "strict",
      clientIp: "203.0.113.9",
    });
    expect(ok.result?.limits.find((l) => l.name === "strict-per-ip")?.remaining).toBe(4n);
  });
});
