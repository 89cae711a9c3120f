/**
 * Envoy's ShouldRateLimit through the service harness (the same handlers the
 * gRPC port serves): descriptors matched to the policy's envoy_ratelimit
 * rules, every matched limit charged in one decision, all or none, with the
 * decision counted like every other door's.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RateLimitResponse_Code } from "../../src/gen/envoy/service/ratelimit/v3/rls_pb.js";
import { createServiceHarness, type ServiceHarness } from "../helpers/service-deps.js";

const POLICY = `
version: 1
default_tier: free
tiers:
  free: {}
endpoints: []
envoy_ratelimit:
  - domain: edge
    descriptors:
      - key: remote_address
        rate_limit: { unit: minute, requests_per_unit: 2 }
      - key: path
        rate_limit: { unit: minute, requests_per_unit: 5 }
      - key: header_match
        value: internal
        unlimited: true
`;

let h: ServiceHarness;
beforeEach(async () => {
  h = await createServiceHarness({ policyYaml: POLICY });
});
afterEach(() => h.close());

const both = (ip: string) => ({
  domain: "edge",
  descriptors: [
    { entries: [{ key: "remote_address", value: ip }] },
    { entries: [{ key: "path", value: "/v1/orders" }] },
  ],
});

describe("ShouldRateLimit", () => {
  it("charges every matched descriptor at once, and none when one is over", async () => {
    for (let i = 0; i < 2; i++) {
      const r = await h.envoyRateLimit.shouldRateLimit(both("192.0.2.1"));
      expect(r.overallCode).toBe(RateLimitResponse_Code.OK);
    }
    const over = await h.envoyRateLimit.shouldRateLimit(both("192.0.2.1"));
    expect(over.overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
    expect(over.statuses.map((s) => s.code)).toEqual([
      RateLimitResponse_Code.OVER_LIMIT,
      RateLimitResponse_Code.OK,
    ]);
    // The refused request charged nothing: the path limit has 5 - 2 left before this call.
    const other = await h.envoyRateLimit.shouldRateLimit(both("192.0.2.2"));
    expect(other.overallCode).toBe(RateLimitResponse_Code.OK);
    expect(other.statuses[1]?.limitRemaining).toBe(2);
    expect(over.responseHeadersToAdd.map((x) => x.key)).toContain("retry-after");
  });

  it("answers OK for descriptors no rule limits, and counts each decision", async () => {
    const r = await h.envoyRateLimit.shouldRateLimit({
      domain: "edge",
      descriptors: [{ entries: [{ key: "header_match", value: "internal" }] }],
    });
    expect(r.overallCode).toBe(RateLimitResponse_Code.OK);
    const metrics = await h.deps.metrics.registry.metrics();
    expect(metrics).toMatch(/tollgate_decisions_total\{[^}]*rpc="ShouldRateLimit"[^}]*\} 1/);
  });
});
