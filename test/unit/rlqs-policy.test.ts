/**
 * The policy's `rlqs` section: what compiles (limits, units per assignment,
 * TTL), how a bucket id finds its entry and its store subject, and what is
 * refused at load with a message naming the field.
 */
import { describe, expect, it } from "vitest";
import { formatPolicy } from "../../src/cli/check-config-command.js";
import { type Policy, PolicyError, parsePolicy } from "../../src/policy/policy.js";
import { policyTable, policyVersion } from "../../src/policy/policy-table.js";
import { matchRlqsBucket } from "../../src/policy/rlqs-rules.js";

const head = "version: 1\ndefault_tier: free\ntiers:\n  free: {}\n";
const load = (rlqs: string): Policy => parsePolicy(`${head}rlqs:\n${rlqs}`, "policy.yaml");
const refusal = (rlqs: string): string => {
  try {
    load(rlqs);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    return (err as Error).message;
  }
  throw new Error("the policy was accepted");
};

const TWO = `  - domain: edge
    buckets:
      - match: { name: api, tenant: "*" }
        rate: { requests: 1000, per: 1s }
      - match: { name: api }
        quota: { requests: 500, per: day }
        local_share: 0.5
        assignment_ttl: 5s
  - domain: ""
    buckets:
      - match: { name: "*" }
        rate: { requests: 10, per: 1m, burst: 40 }
        local_share: 0.01
`;

describe("rlqs buckets that compile", () => {
  it("compiles each entry to a by-subject limit with its units per assignment and TTL", () => {
    const p = load(TWO);
    const [rate, quota] = p.rlqs.get("edge") ?? [];
    expect(rate?.limit).toMatchObject({
      by: "subject",
      kind: "rate",
      mode: "enforce",
      requests: 1000,
      periodMs: 1000,
      burst: 1000,
    });
    expect(rate?.unitsPerAssignment).toBe(50); // default local_share 0.05 × 1000
    expect(rate?.ttlMs).toBe(2000); // default 2s
    expect(quota?.limit).toMatchObject({ kind: "quota", requests: 500, window: "day" });
    expect(quota?.unitsPerAssignment).toBe(250);
    expect(quota?.ttlMs).toBe(5000);
    // At least 1 unit: 0.01 × 40 is 0.4.
    expect(p.rlqs.get("")?.[0]?.unitsPerAssignment).toBe(1);
  });

  it("keeps a bucket id stable across loads, and new when its numbers change", () => {
    const a = load(TWO).rlqs.get("edge")?.[0]?.limit.bucketId;
    expect(load(TWO).rlqs.get("edge")?.[0]?.limit.bucketId).toBe(a);
    const changed = load(TWO.replace("requests: 1000", "requests: 999")).rlqs.get("edge")?.[0];
    expect(changed?.limit.bucketId).not.toBe(a);
  });

  it("a policy without the section has no rlqs domains", () => {
    expect(parsePolicy(head, "p.yaml").rlqs.size).toBe(0);
  });
});

describe("matching a bucket id", () => {
  const p = load(TWO);

  it("takes the first entry whose keys are all present with equal values; '*' is any value", () => {
    const m = matchRlqsBucket(p.rlqs, "edge", { name: "api", tenant: "acme" });
    expect(m?.bucket).toBe(p.rlqs.get("edge")?.[0]);
    expect(m?.tag).toBe("s:name=api,tenant=acme");
    // Without a tenant the first entry does not match; the second does.
    expect(matchRlqsBucket(p.rlqs, "edge", { name: "api" })?.bucket).toBe(p.rlqs.get("edge")?.[1]);
  });

  it("gives each value of a '*' key its own subject, and ignores keys the entry does not name", () => {
    const a = matchRlqsBucket(p.rlqs, "edge", { name: "api", tenant: "a", zone: "eu" });
    const b = matchRlqsBucket(p.rlqs, "edge", { tenant: "b", name: "api" });
    expect(a?.tag).toBe("s:name=api,tenant=a");
    expect(b?.tag).toBe("s:name=api,tenant=b");
  });

  it("escapes ',' '=' and '%' so two bucket ids never share a subject", () => {
    const one = matchRlqsBucket(p.rlqs, "edge", { name: "api", tenant: "a,tenant=b" });
    const two = matchRlqsBucket(p.rlqs, "edge", { name: "api", tenant: "a%2Ctenant%3Db" });
    expect(one?.tag).toBe("s:name=api,tenant=a%2Ctenant%3Db");
    expect(two?.tag).not.toBe(one?.tag);
  });

  it("an unknown domain uses the '' entries; no match there is unknown", () => {
    expect(matchRlqsBucket(p.rlqs, "other", { name: "x" })?.tag).toBe("s:name=x");
    expect(matchRlqsBucket(p.rlqs, "edge", { other: "x" })).toBeUndefined();
    const noCatchAll = load(TWO.split('  - domain: ""')[0] as string);
    expect(matchRlqsBucket(noCatchAll.rlqs, "other", { name: "api" })).toBeUndefined();
  });
});

describe("rlqs buckets refused at load", () => {
  const one = (bucket: string) => `  - domain: edge\n    buckets:\n      - ${bucket}\n`;

  it("needs exactly one of rate or quota", () => {
    expect(refusal(one("{ match: { name: a } }"))).toContain(
      "rlqs.0.buckets.0.rate: an rlqs bucket needs exactly one of rate or quota",
    );
    expect(
      refusal(
        one(
          "{ match: { name: a }, rate: { requests: 1, per: 1s }, quota: { requests: 1, per: day } }",
        ),
      ),
    ).toContain("rlqs.0.buckets.0.rate");
  });

  it("refuses unknown fields, an empty match, empty values and over-long keys", () => {
    expect(
      refusal(one("{ match: { name: a }, rate: { requests: 1, per: 1s }, share: 1 }")),
    ).toContain("rlqs.0.buckets.0");
    expect(refusal(one("{ match: {}, rate: { requests: 1, per: 1s } }"))).toContain(
      "rlqs.0.buckets.0.match: needs at least one key",
    );
    expect(refusal(one('{ match: { name: "" }, rate: { requests: 1, per: 1s } }'))).toContain(
      "rlqs.0.buckets.0.match.name",
    );
    expect(
      refusal(one(`{ match: { ${"k".repeat(65)}: a }, rate: { requests: 1, per: 1s } }`)),
    ).toContain("rlqs.0.buckets.0.match");
  });

  it("bounds local_share and assignment_ttl", () => {
    expect(
      refusal(one("{ match: { a: b }, rate: { requests: 1, per: 1s }, local_share: 0.9 }")),
    ).toContain("rlqs.0.buckets.0.local_share: must be at most 0.5");
    expect(
      refusal(one("{ match: { a: b }, rate: { requests: 1, per: 1s }, local_share: 0 }")),
    ).toContain("rlqs.0.buckets.0.local_share: must be above 0");
    expect(
      refusal(one("{ match: { a: b }, rate: { requests: 1, per: 1s }, assignment_ttl: 2h }")),
    ).toContain("rlqs.0.buckets.0.assignment_ttl");
  });

  it("refuses a domain given twice and a domain without buckets", () => {
    const dup = `${one("{ match: { a: b }, rate: { requests: 1, per: 1s } }")}${one("{ match: { a: c }, rate: { requests: 1, per: 1s } }")}`;
    expect(refusal(dup)).toContain('rlqs.1.domain: duplicate domain "edge"');
    expect(refusal("  - domain: edge\n    buckets: []\n")).toContain(
      "rlqs.0.buckets: needs at least one bucket",
    );
  });
});

describe("check-config", () => {
  it("prints a line per rlqs bucket with its limit and units per assignment", () => {
    const text = formatPolicy(load(TWO));
    expect(text).toContain("rlqs (Envoy rate_limit_quota;");
    expect(text).toMatch(
      /edge +name=api, tenant=\* +rlqs\.edge\.0: rate 1000\/1s burst 1000 by subject \[enforce\] +50 units, ttl 2s/,
    );
    expect(text).toMatch(
      /edge +name=api +rlqs\.edge\.1: quota 500\/day \(UTC\).* +250 units, ttl 5s/,
    );
    expect(text).toMatch(/\* +name=\* +rlqs\.\*\.0: rate 10\/1m burst 40 .* +1 units, ttl 2s/);
  });

  it("a policy without rlqs says so, and keeps its policy version (no rlqs rows)", () => {
    const p = parsePolicy(head, "p.yaml");
    expect(formatPolicy(p)).toContain("rlqs: no buckets");
    expect(policyTable(p).rlqs).toBeUndefined();
    expect(policyVersion(p)).toBe(policyVersion(parsePolicy(`${head}rlqs: []\n`, "q.yaml")));
  });
});
