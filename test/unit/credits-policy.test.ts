/**
 * A tier's `credits` in the policy file: compiled to a plan, validated
 * strictly (each error names its field), shown by check-config's table, and
 * the refill arithmetic the stores share (calendar-window.ts).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { formatPolicy } from "../../src/cli/check-config-command.js";
import { PolicyError, parsePolicy } from "../../src/policy/policy.js";
import { policyTable, policyVersion } from "../../src/policy/policy-table.js";
import { creditPeriod, refilledBalance } from "../../src/store/calendar-window.js";

const policy = (credits: string) =>
  parsePolicy(
    `version: 1\ndefault_tier: t\ntiers:\n  t:\n    credits: ${credits}\n  u: {}\n`,
    "test",
  );

/** The `field: message` lines of a refused policy. */
function issues(credits: string): string[] {
  try {
    policy(credits);
  } catch (err) {
    if (err instanceof PolicyError) return err.issues.map((i) => i.split(":")[0] as string);
    throw err;
  }
  throw new Error("the policy was accepted");
}

describe("policy credits", () => {
  it("compiles a plan with its defaults (no refill, replace, day 1, cap = amount)", () => {
    expect(policy("{ amount: 100 }").tiers.get("t")?.credits).toEqual({
      amount: 100,
      refill: "none",
      refillDay: 1,
      mode: "replace",
      cap: 100,
    });
    expect(
      policy("{ amount: 5, refill: monthly, refill_day: 28, mode: add, cap: 20 }").tiers.get("t")
        ?.credits,
    ).toEqual({ amount: 5, refill: "monthly", refillDay: 28, mode: "add", cap: 20 });
    expect(policy("{ amount: 5 }").tiers.get("u")?.credits).toBeUndefined();
  });

  it("refuses every bad field, naming it", () => {
    const at = (f: string) => `tiers.t.credits.${f}`;
    expect(issues("{ amount: -1 }")).toEqual([at("amount")]);
    expect(issues("{ amount: 1.5 }")).toEqual([at("amount")]);
    expect(issues("{ amount: 1000000000001 }")).toEqual([at("amount")]);
    expect(issues("{}")).toEqual([at("amount")]);
    expect(issues("{ amount: 1, refill: weekly }")).toEqual([at("refill")]);
    expect(issues("{ amount: 1, refill: monthly, refill_day: 29 }")).toEqual([at("refill_day")]);
    expect(issues("{ amount: 1, refill: monthly, refill_day: 0 }")).toEqual([at("refill_day")]);
    expect(issues("{ amount: 1, refill: daily, refill_day: 3 }")).toEqual([at("refill_day")]);
    expect(issues("{ amount: 1, mode: add, cap: 5 }")).toEqual([at("mode")]);
    expect(issues("{ amount: 1, refill: daily, mode: add }")).toEqual([at("cap")]);
    expect(issues("{ amount: 9, refill: daily, mode: add, cap: 5 }")).toEqual([at("cap")]);
    expect(issues("{ amount: 1, cap: 5 }")).toEqual([at("cap")]);
    expect(issues("{ amount: 1, mode: fill }")).toEqual([at("mode")]);
    expect(issues("{ amount: 1, extra: 1 }")).toEqual(["tiers.t.credits"]);
  });

  it("check-config shows each tier's plan; a policy without credits keeps its version", () => {
    const p = policy("{ amount: 1000, refill: monthly, refill_day: 15, mode: add, cap: 3000 }");
    expect(formatPolicy(p)).toContain(
      "  t\n    credits: 1000 credits, refilled monthly on day 15 (00:00 UTC), adding 1000 up to 3000\n  u\n",
    );
    expect(policyTable(p).tiers[1]).toEqual({ name: "u", description: "" });
    const plain = parsePolicy("version: 1\ndefault_tier: t\ntiers:\n  t: {}\n", "x");
    expect(policyTable(plain).tiers).toEqual([{ name: "t", description: "" }]);
    expect(policyVersion(p)).not.toBe(policyVersion(policy("{ amount: 1000 }")));
  });
});

describe("README ## Plans", () => {
  it("its complete policy example loads with every part it shows", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    const at = readme.indexOf("## Plans: credits, overrides");
    expect(at).toBeGreaterThan(0);
    const yaml = /```yaml\n([\s\S]*?)```/.exec(readme.slice(at))?.[1] ?? "";
    const p = parsePolicy(yaml, "README");
    expect(p.tiers.get("pro")?.credits).toMatchObject({ amount: 200_000, refill: "monthly" });
    expect(p.tiers.get("prepaid")?.credits).toMatchObject({ amount: 50_000, refill: "none" });
    expect(policyTable(p).tiers.map((t) => t.name)).toEqual(["free", "pro", "prepaid"]);
    expect(p.notifications).toMatchObject({
      quotaThresholds: [80, 100],
      creditThresholds: [75, 90],
      creditsExhausted: true,
      keyExpiryMs: 7 * 86_400_000,
      rotationDue: true,
    });
    expect(p.envoyAfterResponse.get("edge-usage")).toBe("edge");
  });
});

describe("README ### Credits", () => {
  it("its policy example loads, with the plans it describes", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    const at = readme.indexOf("### Credits");
    expect(at).toBeGreaterThan(readme.indexOf("## Plans: credits, overrides"));
    expect(at).toBeLessThan(readme.indexOf("\n## Policy\n"));
    const yaml = /```yaml\n([\s\S]*?)```/.exec(readme.slice(at))?.[1] ?? "";
    const p = parsePolicy(yaml, "README");
    expect(p.tiers.get("starter")?.credits).toMatchObject({ refill: "monthly", mode: "replace" });
    expect(p.tiers.get("growth")?.credits).toMatchObject({ mode: "add", cap: 10_000 });
    expect(p.tiers.get("prepaid")?.credits).toMatchObject({ amount: 50_000, refill: "none" });
  });
});

describe("credit periods and refills (shared by the stores)", () => {
  it("a monthly period on day d runs from one month's day d to the next's", () => {
    const jan31 = creditPeriod("monthly", 28, Date.UTC(2026, 0, 31));
    expect(jan31.next).toBe(Date.UTC(2026, 1, 28));
    const feb27 = creditPeriod("monthly", 28, Date.UTC(2026, 1, 27, 23, 59));
    expect(feb27.id).toBe(jan31.id);
    expect(creditPeriod("monthly", 28, Date.UTC(2026, 1, 28)).id).toBe(jan31.id + 1);
    // December to January: ids stay consecutive.
    const dec = creditPeriod("monthly", 1, Date.UTC(2026, 11, 5));
    expect(creditPeriod("monthly", 1, Date.UTC(2027, 0, 5)).id).toBe(dec.id + 1);
    expect(creditPeriod("none", 1, Date.UTC(2026, 0, 1))).toEqual({ id: 0 });
  });

  it("replace sets the amount, add adds per period up to the cap, and a top-up above it stays", () => {
    expect(refilledBalance(10, -1, "daily", 5, 3, 6)).toBe(10);
    expect(refilledBalance(10, -1, "daily", 5, 3, 5)).toBe(3);
    expect(refilledBalance(10, 25, "daily", 5, 3, 6)).toBe(13);
    expect(refilledBalance(10, 25, "daily", 5, 3, 8)).toBe(25);
    expect(refilledBalance(10, 25, "daily", 5, 40, 8)).toBe(40);
    // Years idle with a huge amount: no overflow past the cap.
    expect(refilledBalance(1e12, 1e12, "daily", 0, 0, 1e6)).toBe(1e12);
    expect(refilledBalance(10, 25, "none", 0, 3, 9)).toBe(3);
  });
});
