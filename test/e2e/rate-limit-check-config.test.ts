/**
 * `tollgate check-config FILE` (the built CLI): prints the effective
 * tier × endpoint table and exits 0, or names every offending field and exits 1.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { CLI } from "../helpers/tollgate-process.js";

const run = promisify(execFile);

async function checkConfig(
  file: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, "check-config", file]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("tollgate check-config", () => {
  it("prints the effective table of a valid policy and exits 0", async () => {
    const r = await checkConfig("test/fixtures/policies/rate-limit-valid.yaml");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("policy test/fixtures/policies/rate-limit-valid.yaml: OK");
    const rows = r.stdout.split("\n").map((l) => l.trim().replace(/\s+/g, " "));
    expect(rows).toContain("upload POST,PUT /v1/uploads/* - 3 (setting)");
    // The endpoint's override applies to its tier only; the others keep the tier's limits.
    expect(rows).toContain("free upload per-key: rate 1/1m burst 1 by key [enforce]");
    expect(rows).toContain("none-yet: quota 0/month (UTC) by owner [enforce]");
    expect(rows).toContain("free (no match) per-key: rate 10/1s burst 20 by key [enforce]");
    expect(rows).toContain(
      "bulk upload per-key: rate 1000000000000/1s burst 9007199254740 by key [enforce]",
    );
    expect(rows).toContain("blocking: off");
  });

  it("validates the shipped example policy", async () => {
    const r = await checkConfig("examples/policy.yaml");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /free\s+create-order\s+per-key: rate 2\/1s burst 5 by key \[enforce\]/,
    );
    expect(r.stdout).toContain("orders-per-ip: rate 50/1m burst 50 by ip [shadow]");
  });

  it("names every offending field of an invalid policy and exits 1", async () => {
    const r = await checkConfig("test/fixtures/policies/rate-limit-invalid.yaml");
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(
      /^invalid policy: test\/fixtures\/policies\/rate-limit-invalid\.yaml: /,
    );
    for (const field of [
      "tiers.free.limits.0.rate.requests: must not be negative",
      "tiers.free.limits.1.rate.per: must be a duration",
      "tiers.free.limits.2.rate.burst: burst × period is 1000000000000 × 86400000 ms, above 2^53",
      'tiers.free.limits.3.rate: Unrecognized key: "burts"',
      "tiers.free.limits.4.rate: a limit needs exactly one of rate or quota",
    ]) {
      expect(r.stderr).toContain(field);
    }
  });

  it("says when the file cannot be read, exits 1", async () => {
    const r = await checkConfig("test/fixtures/policies/does-not-exist.yaml");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("does-not-exist.yaml: cannot read: ENOENT");
  });
});
