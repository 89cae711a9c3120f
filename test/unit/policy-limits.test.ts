/**
 * Limits in the policy file: what loads (including 0 and values near 2^53),
 * what is refused at load with a message naming the field, and how tier and
 * endpoint limits combine into a decision's effective limits.
 */
import { describe, expect, it } from "vitest";
import {
  effectiveLimits,
  type Limit,
  matchEndpoint,
  type Policy,
  PolicyError,
  parsePolicy,
} from "../../src/policy/policy.js";
import { MAX_QUOTA } from "../../src/policy/policy-schema.js";

/** A policy whose free tier has the one limit given (YAML flow mapping). */
const withLimit = (limit: string) =>
  `version: 1\ndefault_tier: free\ntiers:\n  free:\n    limits:\n      - ${limit}\n`;
const load = (text: string): Policy => parsePolicy(text, "policy.yaml");
const tierLimit = (limit: string): Limit =>
  load(withLimit(limit)).tiers.get("free")?.limits[0] as Limit;
const refusal = (text: string): string => {
  try {
    load(text);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    return (err as Error).message;
  }
  throw new Error("the policy was accepted");
};

describe("limits that load", () => {
  it("compiles a rate: requests per period, burst defaulting to requests", () => {
    expect(tierLimit("{ name: per-key, by: key, rate: { requests: 10, per: 1s } }")).toMatchObject({
      name: "per-key",
      by: "key",
      kind: "rate",
      mode: "enforce",
      requests: 10,
      periodMs: 1_000,
      burst: 10,
    });
    expect(
      tierLimit("{ name: a, by: ip, rate: { requests: 2, per: 5m, burst: 7 }, mode: shadow }"),
    ).toMatchObject({
      by: "ip",
      mode: "shadow",
      requests: 2,
      periodMs: 300_000,
      burst: 7,
    });
  });

  it("reads durations as ms, s, m, h, d, or a number of seconds", () => {
    const per = (p: string) =>
      tierLimit(`{ name: a, by: key, rate: { requests: 1, per: ${p} } }`).periodMs;
    expect([
      per("250ms"),
      per("30s"),
      per("5m"),
      per("2h"),
      per("7d"),
      per("1.5"),
      per("2"),
    ]).toEqual([250, 30_000, 300_000, 7_200_000, 604_800_000, 1_500, 2_000]);
  });

  it("compiles a quota per calendar window", () => {
    for (const [w, ms] of [
      ["day", 86_400_000],
      ["week", 604_800_000],
      ["month", 2_592_000_000],
    ] as const) {
      expect(
        tierLimit(`{ name: q, by: owner, quota: { requests: 100, per: ${w} } }`),
      ).toMatchObject({
        kind: "quota",
        by: "owner",
        requests: 100,
        burst: 100,
        window: w,
        periodMs: ms,
      });
    }
  });

  it("accepts a limit of 0 (it always denies)", () => {
    expect(tierLimit("{ name: none, by: key, rate: { requests: 0, per: 1s } }")).toMatchObject({
      requests: 0,
      burst: 0,
    });
    expect(tierLimit("{ name: none, by: key, quota: { requests: 0, per: day } }")).toMatchObject({
      requests: 0,
    });
  });

  it("keeps values near 2^53 exact: a quota of MAX_QUOTA, a burst × period just under 2^53", () => {
    expect(
      tierLimit(`{ name: q, by: key, quota: { requests: ${MAX_QUOTA}, per: month } }`).requests,
    ).toBe(MAX_QUOTA);
    const burst = Math.floor(Number.MAX_SAFE_INTEGER / 1_000);
    const r = tierLimit(
      `{ name: r, by: key, rate: { requests: 1000000000000, per: 1s, burst: ${burst} } }`,
    );
    expect(r.burst).toBe(9_007_199_254_740);
    expect(r.burst * r.periodMs).toBeLessThan(2 ** 53);
    const year = tierLimit("{ name: r, by: key, rate: { requests: 1, per: 366d, burst: 284836 } }");
    expect(year.periodMs).toBe(31_622_400_000);
  });

  it("gives a bucket id that changes with the limit's numbers, so old state is not misread", () => {
    const id = (l: string) => tierLimit(l).bucketId;
    const a = id("{ name: a, by: key, rate: { requests: 10, per: 1s } }");
    expect(id("{ name: a, by: key, rate: { requests: 10, per: 1s } }")).toBe(a);
    expect(id("{ name: a, by: key, rate: { requests: 10, per: 1s }, mode: shadow }")).toBe(a);
    expect(id("{ name: a, by: key, rate: { requests: 11, per: 1s } }")).not.toBe(a);
    expect(id("{ name: a, by: key, rate: { requests: 10, per: 2s } }")).not.toBe(a);
    expect(id("{ name: a, by: key, rate: { requests: 10, per: 1s, burst: 20 } }")).not.toBe(a);
    expect(id("{ name: a, by: ip, rate: { requests: 10, per: 1s } }")).not.toBe(a);
    expect(a.startsWith("a.")).toBe(true);
  });
});

describe("limits refused at load, naming the field", () => {
  const cases: [string, string, RegExp][] = [
    [
      "a negative rate",
      "{ name: a, by: key, rate: { requests: -1, per: 1s } }",
      /tiers\.free\.limits\.0\.rate\.requests: must not be negative/,
    ],
    [
      "a negative quota",
      "{ name: a, by: key, quota: { requests: -5, per: day } }",
      /tiers\.free\.limits\.0\.quota\.requests: must not be negative/,
    ],
    [
      "a negative burst",
      "{ name: a, by: key, rate: { requests: 1, per: 1s, burst: -1 } }",
      /tiers\.free\.limits\.0\.rate\.burst: must not be negative/,
    ],
    [
      "a fractional count",
      "{ name: a, by: key, quota: { requests: 1.5, per: day } }",
      /tiers\.free\.limits\.0\.quota\.requests: must be an integer/,
    ],
    [
      "a zero period",
      "{ name: a, by: key, rate: { requests: 1, per: 0s } }",
      /tiers\.free\.limits\.0\.rate\.per: must be a duration/,
    ],
    [
      "a negative period",
      "{ name: a, by: key, rate: { requests: 1, per: -5 } }",
      /tiers\.free\.limits\.0\.rate\.per: must be a duration/,
    ],
    [
      "a period over a year",
      "{ name: a, by: key, rate: { requests: 1, per: 367d } }",
      /tiers\.free\.limits\.0\.rate\.per: must be a duration/,
    ],
    [
      "a period in an unknown unit",
      "{ name: a, by: key, rate: { requests: 1, per: 1w } }",
      /tiers\.free\.limits\.0\.rate\.per: must be a duration/,
    ],
    [
      "an absurd burst × period",
      "{ name: a, by: key, rate: { requests: 1, per: 1d, burst: 1000000000000 } }",
      /tiers\.free\.limits\.0\.rate\.burst: burst × period is 1000000000000 × 86400000 ms, above 2\^53/,
    ],
    [
      "burst × period one above 2^53",
      "{ name: a, by: key, rate: { requests: 1, per: 1s, burst: 9007199254741 } }",
      /tiers\.free\.limits\.0\.rate\.burst: burst × period/,
    ],
    [
      "requests × period above 2^53 (burst defaulted)",
      "{ name: a, by: key, rate: { requests: 200000000000, per: 1m } }",
      /tiers\.free\.limits\.0\.rate\.requests: burst × period/,
    ],
    [
      "a quota above MAX_QUOTA",
      `{ name: a, by: key, quota: { requests: ${MAX_QUOTA + 1}, per: day } }`,
      /tiers\.free\.limits\.0\.quota\.requests:/,
    ],
    [
      "an unknown field in a rate",
      "{ name: a, by: key, rate: { requests: 1, per: 1s, burts: 3 } }",
      /tiers\.free\.limits\.0\.rate: Unrecognized key: "burts"/,
    ],
    [
      "an unknown field in a limit",
      "{ name: a, by: key, rate: { requests: 1, per: 1s }, window: 5 }",
      /tiers\.free\.limits\.0: Unrecognized key: "window"/,
    ],
    [
      "both rate and quota",
      "{ name: a, by: key, rate: { requests: 1, per: 1s }, quota: { requests: 1, per: day } }",
      /tiers\.free\.limits\.0\.rate: a limit needs exactly one of rate or quota/,
    ],
    [
      "neither rate nor quota",
      "{ name: a, by: key }",
      /tiers\.free\.limits\.0\.rate: a limit needs exactly one of rate or quota/,
    ],
    [
      "an unknown quota window",
      "{ name: a, by: key, quota: { requests: 1, per: year } }",
      /tiers\.free\.limits\.0\.quota\.per:/,
    ],
    [
      "an unknown dimension",
      "{ name: a, by: header, rate: { requests: 1, per: 1s } }",
      /tiers\.free\.limits\.0\.by:/,
    ],
    [
      "an unknown mode",
      "{ name: a, by: key, rate: { requests: 1, per: 1s }, mode: dry-run }",
      /tiers\.free\.limits\.0\.mode:/,
    ],
    [
      "tiers on a tier limit",
      "{ name: a, by: key, rate: { requests: 1, per: 1s }, tiers: [free] }",
      /tiers\.free\.limits\.0\.tiers: only endpoint limits take tiers/,
    ],
  ];
  for (const [what, limit, message] of cases) {
    it(`refuses ${what}`, () => {
      expect(refusal(withLimit(limit))).toMatch(message);
    });
  }

  it("names the file and every offending field at once", () => {
    const text = `version: 1
default_tier: free
tiers:
  free:
    limits:
      - { name: a, by: key, rate: { requests: -1, per: 1s } }
      - { name: a, by: key, quota: { requests: 1, per: day } }
endpoints:
  - name: e
    path: /v1/e
    limits:
      - { name: x, by: key, rate: { requests: 1, per: 0s }, tiers: [gold] }
`;
    const m = refusal(text);
    expect(m.startsWith("policy.yaml: ")).toBe(true);
    expect(m).toContain("tiers.free.limits.0.rate.requests: must not be negative");
    expect(m).toContain("endpoints.0.limits.0.rate.per: must be a duration");
  });

  it("refuses duplicate limit names and endpoint limits for unknown tiers", () => {
    const dup = `version: 1
default_tier: free
tiers:
  free:
    limits:
      - { name: a, by: key, rate: { requests: 1, per: 1s } }
      - { name: a, by: ip, rate: { requests: 1, per: 1s } }
`;
    expect(refusal(dup)).toContain('tiers.free.limits.1.name: duplicate limit "a"');
    const unknownTier = `version: 1
default_tier: free
tiers: { free: {} }
endpoints:
  - name: e
    path: /v1/e
    limits:
      - { name: x, by: key, rate: { requests: 1, per: 1s }, tiers: [gold] }
`;
    expect(refusal(unknownTier)).toContain('endpoints.0.limits.0.tiers.0: "gold" is not a tier');
  });
});

describe("effective limits of a decision", () => {
  const policy = load(`version: 1
default_tier: free
tiers:
  free:
    limits:
      - { name: per-key, by: key, rate: { requests: 10, per: 1s, burst: 20 } }
      - { name: monthly, by: owner, quota: { requests: 1000, per: month } }
  pro:
    limits:
      - { name: per-key, by: key, rate: { requests: 100, per: 1s } }
  empty: {}
endpoints:
  - name: create
    method: POST
    path: /v1/orders
    limits:
      - { name: per-key, by: key, rate: { requests: 2, per: 1s, burst: 5 }, tiers: [free] }
      - { name: per-ip, by: ip, rate: { requests: 50, per: 1m }, mode: shadow }
  - name: read
    method: GET
    path: /v1/orders/{id}
`);
  const describeAll = (ls: Limit[]) =>
    ls.map((l) => `${l.name}:${l.by}:${l.requests}/${l.periodMs}/${l.burst}:${l.mode}`);

  it("a request matching no endpoint gets its tier's limits, in file order", () => {
    expect(describeAll(effectiveLimits(policy, "free", undefined))).toEqual([
      "per-key:key:10/1000/20:enforce",
      "monthly:owner:1000/2592000000/1000:enforce",
    ]);
    expect(effectiveLimits(policy, "empty", undefined)).toEqual([]);
  });

  it("an endpoint overrides a same-named tier limit in place and appends the rest", () => {
    const create = matchEndpoint(policy, "POST", "/v1/orders");
    expect(create?.name).toBe("create");
    expect(describeAll(effectiveLimits(policy, "free", create))).toEqual([
      "per-key:key:2/1000/5:enforce",
      "monthly:owner:1000/2592000000/1000:enforce",
      "per-ip:ip:50/60000/50:shadow",
    ]);
  });

  it("an endpoint limit restricted to some tiers leaves the others' limits alone", () => {
    const create = matchEndpoint(policy, "POST", "/v1/orders");
    expect(describeAll(effectiveLimits(policy, "pro", create))).toEqual([
      "per-key:key:100/1000/100:enforce",
      "per-ip:ip:50/60000/50:shadow",
    ]);
  });

  it("an overridden limit has its own bucket (different numbers, different bucket id)", () => {
    const create = matchEndpoint(policy, "POST", "/v1/orders");
    const tierWide = effectiveLimits(policy, "free", undefined)[0];
    const onCreate = effectiveLimits(policy, "free", create)[0];
    expect(onCreate?.name).toBe(tierWide?.name);
    expect(onCreate?.bucketId).not.toBe(tierWide?.bucketId);
  });
});

describe("sync: exact or batched", () => {
  it("defaults to exact (no batch), and batched takes local_share of the burst per take", async () => {
    const { takeSize } = await import("../../src/policy/policy.js");
    expect(
      tierLimit("{ name: a, by: key, rate: { requests: 10, per: 1s } }").batch,
    ).toBeUndefined();
    const b = tierLimit("{ name: a, by: key, rate: { requests: 6000, per: 1m }, sync: batched }");
    expect(b.batch).toEqual({ localShare: 0.05, flushMs: 1000 });
    expect(takeSize(b)).toBe(300);
    const q = tierLimit(
      "{ name: a, by: key, quota: { requests: 10, per: day }, sync: batched, batch: { local_share: 0.01, flush_interval: 250ms } }",
    );
    expect(q.batch).toEqual({ localShare: 0.01, flushMs: 250 });
    // Never below one unit a take.
    expect(takeSize(q)).toBe(1);
  });

  it("keeps the bucket when a limit switches between exact and batched", () => {
    const exact = tierLimit("{ name: a, by: key, rate: { requests: 10, per: 1s } }");
    const batched = tierLimit(
      "{ name: a, by: key, rate: { requests: 10, per: 1s }, sync: batched }",
    );
    expect(batched.bucketId).toBe(exact.bucketId);
  });

  it("refuses bad knobs, naming the field", () => {
    expect(
      refusal(withLimit("{ name: a, by: key, rate: { requests: 1, per: 1s }, sync: sometimes }")),
    ).toMatch(/tiers\.free\.limits\.0\.sync/);
    expect(
      refusal(
        withLimit(
          "{ name: a, by: key, rate: { requests: 1, per: 1s }, batch: { local_share: 0.1 } }",
        ),
      ),
    ).toMatch(/tiers\.free\.limits\.0\.batch: batch is for sync: batched limits only/);
    for (const share of ["0", "0.6", "-1"])
      expect(
        refusal(
          withLimit(
            `{ name: a, by: key, rate: { requests: 1, per: 1s }, sync: batched, batch: { local_share: ${share} } }`,
          ),
        ),
      ).toMatch(/tiers\.free\.limits\.0\.batch\.local_share/);
    expect(
      refusal(
        withLimit(
          "{ name: a, by: key, rate: { requests: 1, per: 1s }, sync: batched, batch: { flush_interval: 2h } }",
        ),
      ),
    ).toMatch(/tiers\.free\.limits\.0\.batch\.flush_interval/);
    expect(
      refusal(
        withLimit(
          "{ name: a, by: key, rate: { requests: 1, per: 1s }, sync: batched, batch: { share: 0.1 } }",
        ),
      ),
    ).toMatch(/tiers\.free\.limits\.0\.batch/);
  });
});
