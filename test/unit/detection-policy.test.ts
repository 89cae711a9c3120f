/**
 * The policy's `detection` section: defaults, compiled values, refused input
 * named by field path; and the webhook signature a receiver verifies.
 */
import { describe, expect, it } from "vitest";
import { networkOf } from "../../src/events/network.js";
import { signWebhook, verifyWebhook } from "../../src/events/webhook-signature.js";
import { PolicyError, parsePolicy } from "../../src/policy/policy.js";

const head = "version: 1\ndefault_tier: free\ntiers: { free: {} }\n";

describe("detection rules in the policy", () => {
  it("compiles every kind with its defaults", () => {
    const p = parsePolicy(
      `${head}detection:
  rules:
    - { name: bf, kind: threshold, events: [auth_failure], by: ip, count: 20, within: 60s, action: { block: 10m } }
    - { name: cs, kind: distinct, events: [auth_failure], by: ip, distinct: key, count: 10, within: 5m }
    - { name: ns, kind: new_source }
    - { name: sp, kind: spike, factor: 5 }
  webhooks:
    - { name: ops, url: "https://example.com/hook", secret_env: HOOK_SECRET }
`,
      "t",
    );
    const [bf, cs, ns, sp] = p.detection.rules;
    expect(bf).toMatchObject({
      kind: "threshold",
      count: 20,
      withinMs: 60_000,
      blockMs: 600_000,
      severity: "medium",
      cooldownMs: 300_000,
    });
    expect(cs).toMatchObject({ kind: "distinct", distinct: "key", count: 10 });
    expect(ns).toMatchObject({
      kind: "new_source",
      ipv4Prefix: 24,
      ipv6Prefix: 64,
      historyMs: 30 * 86_400_000,
    });
    expect([...(ns?.events ?? [])]).toEqual(["request"]);
    expect(sp).toMatchObject({
      kind: "spike",
      factor: 5,
      bucketMs: 60_000,
      minHistory: 10,
      minRequests: 10,
    });
    expect(p.detection.webhooks[0]).toMatchObject({
      name: "ops",
      maxAttempts: 6,
      queueSize: 1000,
      minSeverity: "info",
    });
  });

  it.each([
    [
      "a rule without a count",
      "- { name: x, kind: threshold, events: [auth_failure], by: ip, within: 1m }",
      "detection.rules.0.count",
    ],
    ["an unknown field", "- { name: x, kind: spike, factor: 5, typo: 1 }", "detection.rules.0"],
    [
      "a bad event type",
      "- { name: x, kind: threshold, events: [Auth], by: ip, count: 1, within: 1m }",
      "detection.rules.0.events.0",
    ],
    [
      "blocking an owner",
      "- { name: x, kind: threshold, events: [auth_failure], by: owner, count: 1, within: 1m, action: { block: 1m } }",
      "detection.rules.0.action",
    ],
    ["a tiny spike factor", "- { name: x, kind: spike, factor: 1 }", "detection.rules.0.factor"],
  ])("refuses %s", (_what, rule, path) => {
    expect(() => parsePolicy(`${head}detection:\n  rules:\n    ${rule}\n`, "t")).toThrow(
      PolicyError,
    );
    expect(() => parsePolicy(`${head}detection:\n  rules:\n    ${rule}\n`, "t")).toThrow(path);
  });

  it("refuses an unsigned or non-http webhook", () => {
    expect(() =>
      parsePolicy(
        `${head}detection:\n  webhooks:\n    - { name: a, url: "https://x.example" }\n`,
        "t",
      ),
    ).toThrow("secret_env");
    expect(() =>
      parsePolicy(
        `${head}detection:\n  webhooks:\n    - { name: a, url: "ftp://x.example", secret_env: S }\n`,
        "t",
      ),
    ).toThrow("http(s) URL");
  });
});

describe("webhook signature", () => {
  it("verifies the MAC over timestamp and body, and refuses replays and tampering", () => {
    const body = '{"a":1}';
    const h = signWebhook("s3cret-s3cret-s3cret", body, 1_700_000_000);
    expect(h).toMatch(/^t=1700000000,v1=[0-9a-f]{64}$/);
    expect(verifyWebhook("s3cret-s3cret-s3cret", body, h, 1_700_000_100)).toBe(true);
    expect(verifyWebhook("s3cret-s3cret-s3cret", body, h, 1_700_001_000)).toBe(false);
    expect(verifyWebhook("s3cret-s3cret-s3cret", '{"a":2}', h, 1_700_000_000)).toBe(false);
    expect(verifyWebhook("other-secret-other", body, h, 1_700_000_000)).toBe(false);
  });
});

describe("networks for new_source", () => {
  it("clears host bits of IPv4 and IPv6 addresses", () => {
    expect(networkOf("10.1.2.3", 24, 64)).toBe("10.1.2.0/24");
    expect(networkOf("::ffff:10.1.2.3", 16, 64)).toBe("10.1.0.0/16");
    expect(networkOf("2001:db8:1:2:3::9", 24, 64)).toBe("2001:db8:1:2:0:0:0:0/64");
    expect(networkOf("not-an-ip", 24, 64)).toBeUndefined();
  });
});
