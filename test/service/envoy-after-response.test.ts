/**
 * Envoy post-response accounting through the service harness: a domain the
 * policy marks `charge: after_response` takes Envoy's stream-done
 * ShouldRateLimit (`apply_on_stream_done`, `hits_addend` from the response),
 * force-charges it — into the buckets of its `limits_of` domain, or its own —
 * and answers OK; the request-time domain then denies until the debt drains.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RateLimitResponse_Code } from "../../src/gen/envoy/service/ratelimit/v3/rls_pb.js";
import { PolicyError, parsePolicy } from "../../src/policy/policy.js";
import { policyTable } from "../../src/policy/policy-table.js";
import { pollUntil } from "../helpers/clients.js";
import { createServiceHarness, type ServiceHarness } from "../helpers/service-deps.js";

const BASE = `
version: 1
default_tier: free
tiers:
  free: {}
endpoints: []
`;
const POLICY = `${BASE}envoy_ratelimit:
  - domain: edge
    descriptors:
      - key: api_key
        rate_limit: { unit: minute, requests_per_unit: 10 }
  - domain: edge-usage
    charge: after_response
    limits_of: edge
  - domain: tokens
    charge: after_response
    descriptors:
      - key: api_key
        rate_limit: { unit: day, requests_per_unit: 1000 }
`;

let h: ServiceHarness;
beforeEach(async () => {
  h = await createServiceHarness({ policyYaml: POLICY });
});
afterEach(() => h.close());

const call = (domain: string, hitsAddend = 0, key = "alice") =>
  h.envoyRateLimit.shouldRateLimit({
    domain,
    hitsAddend,
    descriptors: [{ entries: [{ key: "api_key", value: key }] }],
  });

describe("ShouldRateLimit on a charge: after_response domain", () => {
  it("charges hits_addend past the limit, answers OK, and the request-time domain denies until the debt drains", async () => {
    expect((await call("edge")).statuses[0]?.limitRemaining).toBe(9);
    const done = await call("edge-usage", 25);
    expect(done.overallCode).toBe(RateLimitResponse_Code.OK);
    expect(done.statuses[0]?.code).toBe(RateLimitResponse_Code.OK);
    expect(done.statuses[0]?.limitRemaining).toBe(0);
    expect(done.statuses[0]?.currentLimit?.requestsPerUnit).toBe(10);
    // Another caller's bucket is untouched.
    expect((await call("edge", 0, "bob")).overallCode).toBe(RateLimitResponse_Code.OK);
    expect((await call("edge")).overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
    // 26 units on a bucket of 10 draining one per 6 s: a request fits once 17 have drained.
    h.clock.advance(101_000);
    expect((await call("edge")).overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
    h.clock.advance(1_000);
    expect((await call("edge")).overallCode).toBe(RateLimitResponse_Code.OK);
  });

  it("charges its own descriptors' buckets and never denies, however far past the limit", async () => {
    for (let i = 0; i < 3; i++) {
      const r = await call("tokens", 600);
      expect(r.overallCode).toBe(RateLimitResponse_Code.OK);
      expect(r.statuses[0]?.code).toBe(RateLimitResponse_Code.OK);
      expect(r.statuses[0]?.limitRemaining).toBe(i === 0 ? 400 : 0);
    }
    // A call without hits_addend charges 1.
    expect((await call("tokens")).overallCode).toBe(RateLimitResponse_Code.OK);
  });

  it("is not counted as a decision, and check-config shows the domains", async () => {
    await call("edge");
    await call("edge-usage", 3);
    const metrics = await h.deps.metrics.registry.metrics();
    expect(metrics).toMatch(/tollgate_decisions_total\{[^}]*rpc="ShouldRateLimit"[^}]*\} 1\n/);
    const table = JSON.stringify(policyTable(parsePolicy(POLICY, "p")));
    expect(table).toContain("edge-usage (after response)");
    expect(table).toContain("the limits of edge");
    expect(table).toContain("tokens (after response)");
  });
});

describe("notifications of after_response charges", () => {
  it("raises the threshold a stream-done charge crosses on a monthly descriptor quota", async () => {
    await h.close();
    h = await createServiceHarness({
      policyYaml: `${BASE}envoy_ratelimit:
  - domain: edge
    descriptors:
      - key: api_key
        rate_limit: { unit: month, requests_per_unit: 4, name: key-monthly }
  - domain: edge-usage
    charge: after_response
    limits_of: edge
notifications:
  quota: { thresholds: [100] }
`,
    });
    expect((await call("edge-usage", 5)).overallCode).toBe(RateLimitResponse_Code.OK);
    const { value } = await pollUntil(
      async () => (await h.keys.listAlerts({ rule: "quota-threshold" }, h.auth)).alerts,
      (a) => a.length >= 1,
      5_000,
    );
    expect(value.map((x) => [x.limit, x.thresholdPercent])).toEqual([["key-monthly", 100]]);
    expect((await call("edge")).overallCode).toBe(RateLimitResponse_Code.OVER_LIMIT);
  });
});

describe("the policy's charge and limits_of", () => {
  const refusal = (domains: string): string => {
    try {
      parsePolicy(`${BASE}envoy_ratelimit:\n${domains}`, "policy.yaml");
    } catch (err) {
      expect(err).toBeInstanceOf(PolicyError);
      return (err as Error).message;
    }
    throw new Error("the policy was accepted");
  };
  const edge =
    "  - domain: edge\n    descriptors: [{ key: k, rate_limit: { unit: second, requests_per_unit: 1 } }]\n";

  it("refuses an unknown charge mode, naming the accepted ones", () => {
    const msg = refusal(`${edge}  - { domain: u, charge: after }\n`);
    expect(msg).toContain("envoy_ratelimit.1.charge");
    expect(msg).toContain("after_response");
  });

  it("refuses limits_of without after_response, of an unknown or after_response domain, or with descriptors", () => {
    expect(refusal(`${edge}  - { domain: u, limits_of: edge }\n`)).toContain(
      "envoy_ratelimit.1.limits_of: only a domain with `charge: after_response`",
    );
    expect(
      refusal(`${edge}  - { domain: u, charge: after_response, limits_of: edgy }\n`),
    ).toContain('envoy_ratelimit.1.limits_of: "edgy" is not another domain');
    expect(refusal(`${edge}  - { domain: u, charge: after_response, limits_of: u }\n`)).toContain(
      'envoy_ratelimit.1.limits_of: "u" is not another domain',
    );
    expect(
      refusal(
        `${edge}  - { domain: u, charge: after_response }\n  - { domain: v, charge: after_response, limits_of: u }\n`,
      ),
    ).toContain('envoy_ratelimit.2.limits_of: "u" is charged after the response itself');
    expect(
      refusal(
        `${edge}  - domain: u\n    charge: after_response\n    limits_of: edge\n    descriptors: [{ key: k }]\n`,
      ),
    ).toContain("envoy_ratelimit.1.descriptors: a domain charging the limits of another");
  });
});
