/**
 * The policy's `notifications` section: compiled values and defaults, refused
 * input named by field path, and the lines check-config prints.
 */
import { crc32 } from "node:zlib";
import { describe, expect, it } from "vitest";
import { PolicyError, parsePolicy } from "../../src/policy/policy.js";
import { notificationLines, policyTable, policyVersion } from "../../src/policy/policy-table.js";

const head = `version: 1
default_tier: free
tiers:
  free:
    limits:
      - { name: monthly, by: key, quota: { requests: 1000, per: month } }
      - { name: per-second, by: key, rate: { requests: 10, per: 1s } }
`;

function errorOf(yaml: string): string {
  try {
    parsePolicy(yaml, "t");
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    return (err as Error).message;
  }
  throw new Error("the policy was accepted");
}

describe("notifications in the policy", () => {
  it("compiles every notice, thresholds ascending", () => {
    const p = parsePolicy(
      `${head}notifications:
  quota: { thresholds: [100, 80, 90], limits: { monthly: [50] } }
  credits: { thresholds: [90, 50] }
  credits_exhausted: true
  key_expiry_days: 7
  rotation_due: true
  severity: high
`,
      "t",
    );
    expect(p.notifications).toMatchObject({
      quotaThresholds: [80, 90, 100],
      creditThresholds: [50, 90],
      creditsExhausted: true,
      keyExpiryMs: 7 * 86_400_000,
      rotationDue: true,
      severity: "high",
      enabled: true,
    });
    expect([...p.notifications.quotaByLimit]).toEqual([["monthly", [50]]]);
  });

  it("is off without the section, and with an empty one", () => {
    expect(parsePolicy(head, "t").notifications.enabled).toBe(false);
    const empty = parsePolicy(`${head}notifications: {}\n`, "t").notifications;
    expect(empty).toMatchObject({ enabled: false, severity: "medium", quotaThresholds: [] });
  });

  it.each([
    [
      "an unknown field",
      "notifications: { quota_thresholds: [80] }",
      "notifications: Unrecognized key",
    ],
    [
      "a threshold above 100",
      "notifications: { quota: { thresholds: [80, 120] } }",
      "notifications.quota.thresholds.1: must be at most 100",
    ],
    [
      "a threshold of 0",
      "notifications: { credits: { thresholds: [0] } }",
      "notifications.credits.thresholds.0: must be at least 1",
    ],
    [
      "a fraction",
      "notifications: { quota: { thresholds: [80.5] } }",
      "notifications.quota.thresholds.0: must be a whole percentage",
    ],
    [
      "a threshold twice",
      "notifications: { quota: { thresholds: [80, 80] } }",
      "notifications.quota.thresholds.1: threshold 80 is listed twice",
    ],
    [
      "an unknown limit",
      "notifications: { quota: { limits: { yearly: [80] } } }",
      'notifications.quota.limits.yearly: "yearly" is not a limit',
    ],
    [
      "a rate limit",
      "notifications: { quota: { limits: { per-second: [80] } } }",
      'notifications.quota.limits.per-second: "per-second" is a rate limit',
    ],
    [
      "zero days",
      "notifications: { key_expiry_days: 0 }",
      "notifications.key_expiry_days: must be at least 1 day",
    ],
    ["a string flag", 'notifications: { rotation_due: "yes" }', "notifications.rotation_due"],
    ["an unknown severity", "notifications: { severity: urgent }", "notifications.severity"],
  ])("refuses %s, naming the field", (_what, section, message) => {
    expect(errorOf(`${head}${section}\n`)).toContain(message);
  });

  it("accepts a limit an endpoint defines", () => {
    const p = parsePolicy(
      `${head}endpoints:
  - name: export
    path: /v1/export
    limits: [{ name: exports, by: key, quota: { requests: 5, per: day } }]
notifications: { quota: { limits: { exports: [100] } } }
`,
      "t",
    );
    expect(p.notifications.quotaByLimit.get("exports")).toEqual([100]);
  });

  it("accepts a named monthly Envoy descriptor limit, and refuses a per-minute one", () => {
    const envoy = `envoy_ratelimit:
  - domain: edge
    descriptors:
      - { key: tenant, rate_limit: { unit: month, requests_per_unit: 9, name: tenant-monthly } }
      - { key: ip, rate_limit: { unit: minute, requests_per_unit: 9, name: ip-minute } }
`;
    const ok = parsePolicy(
      `${head}${envoy}notifications: { quota: { limits: { tenant-monthly: [90] } } }\n`,
      "t",
    );
    expect(ok.notifications.quotaByLimit.get("tenant-monthly")).toEqual([90]);
    expect(
      errorOf(`${head}${envoy}notifications: { quota: { limits: { ip-minute: [90] } } }\n`),
    ).toContain('"ip-minute" is a rate limit');
  });

  it("is shown by check-config, one line per notice", () => {
    const p = parsePolicy(
      `${head}notifications:
  quota: { thresholds: [80, 100], limits: { monthly: [] } }
  credits_exhausted: true
  key_expiry_days: 14
  rotation_due: true
`,
      "t",
    );
    expect(policyTable(p).notifications).toEqual([
      "quota used: 80%, 100% (every quota limit)",
      'quota "monthly" used: none',
      "credits exhausted",
      "key expiring within 14d",
      "rotation due (secret older than TOLLGATE_ROTATION_AGE_S)",
      "severity: medium; sent to webhooks: none",
    ]);
    expect(notificationLines(parsePolicy(head, "t").notifications)).toEqual([]);
  });

  it("leaves the policy version of a policy without notifications as it was", () => {
    const without = parsePolicy(head, "t");
    const { notifications: _n, source: _s, ...rows } = policyTable(without);
    expect(policyVersion(without)).toMatch(/^[0-9a-f]{8}$/);
    // The version of the same rows before the section existed.
    expect(policyVersion(without)).toBe(crc32(JSON.stringify(rows)).toString(16).padStart(8, "0"));
    const withSome = parsePolicy(`${head}notifications: { rotation_due: true }\n`, "t");
    expect(policyVersion(withSome)).not.toBe(policyVersion(without));
  });
});
