/**
 * The effective policy's rows (policy/policy-table.ts) are what check-config
 * prints: formatPolicy lays out exactly these rows, no more, no fewer, and the
 * rows say what the compiled policy holds.
 */
import { describe, expect, it } from "vitest";
import { formatPolicy } from "../../src/cli/check-config-command.js";
import { loadPolicyFile, parsePolicy } from "../../src/policy/policy.js";
import {
  formatDurationMs,
  NO_MATCH,
  policyTable,
  policyVersion,
} from "../../src/policy/policy-table.js";
import { checkConfigLimitRows } from "../helpers/check-config-table.js";

const files = ["examples/policy.yaml", "test/fixtures/policies/rate-limit-valid.yaml"];

describe("the effective policy table", () => {
  it.each(files)("is what check-config prints for %s", async (file) => {
    const p = await loadPolicyFile(file);
    const t = policyTable(p);
    expect(checkConfigLimitRows(formatPolicy(p))).toEqual(
      t.limits.map((r) => [r.tier, r.endpoint, r.limit]),
    );
    const text = formatPolicy(p);
    expect(text).toContain(`blocking: ${t.blocking}\n`);
    const cells = text.split("\n").map((l) => l.trim().split(/\s{2,}/));
    for (const e of t.endpoints)
      expect(cells).toContainEqual([e.name, e.method, e.path, e.scopes, e.cost, e.fail]);
  });

  it("has a row per tier × endpoint × limit, endpoint overrides for their tiers only", async () => {
    const t = policyTable(await loadPolicyFile("test/fixtures/policies/rate-limit-valid.yaml"));
    const tiers = new Set(t.limits.map((r) => r.tier));
    expect([...tiers]).toEqual(t.tiers.map((x) => x.name));
    for (const tier of tiers) {
      const endpoints = new Set(t.limits.filter((r) => r.tier === tier).map((r) => r.endpoint));
      expect([...endpoints]).toEqual(t.endpoints.map((e) => e.name));
    }
    expect(t.limits).toContainEqual({
      tier: "free",
      endpoint: "upload",
      limit: "per-key: rate 1/1m burst 1 by key [enforce]",
    });
    expect(t.limits).toContainEqual({
      tier: "free",
      endpoint: NO_MATCH,
      limit: "per-key: rate 10/1s burst 20 by key [enforce]",
    });
  });

  it("says none for a pair without limits, off without blocking", () => {
    const p = parsePolicy(
      "version: 1\ndefault_tier: open\ntiers:\n  open:\n    limits: []\n",
      "inline",
    );
    const t = policyTable(p);
    expect(t.limits).toEqual([{ tier: "open", endpoint: NO_MATCH, limit: "none" }]);
    expect(t.blocking).toBe("off");
    expect(t.envoy).toEqual([]);
    expect(t.detection).toEqual([]);
  });

  it("has a version that follows the rows, not the file's name or formatting", () => {
    const yaml = (rate: number) =>
      `version: 1\ndefault_tier: t\ntiers:\n  t:\n    limits:\n      - { name: r, by: key, rate: { requests: ${rate}, per: 1s } }\n`;
    const a = policyVersion(parsePolicy(yaml(5), "a.yaml"));
    expect(a).toMatch(/^[0-9a-f]{8}$/);
    expect(policyVersion(parsePolicy(`# a comment\n${yaml(5)}`, "b.yaml"))).toBe(a);
    expect(policyVersion(parsePolicy(yaml(6), "a.yaml"))).not.toBe(a);
  });

  it("writes durations in their largest whole unit", () => {
    expect(formatDurationMs(86_400_000)).toBe("1d");
    expect(formatDurationMs(600_000)).toBe("10m");
    expect(formatDurationMs(1500)).toBe("1500ms");
  });
});
