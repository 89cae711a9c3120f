/**
 * Which decisions get an access-log line (TOLLGATE_ACCESS_LOG): every denial
 * always, allowed decisions all, none, or an evenly spaced share
 * (TOLLGATE_ACCESS_LOG_SAMPLE) under the shipped default `denials`.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createServiceHarness, type ServiceHarness } from "../helpers/service-deps.js";

let h: ServiceHarness | undefined;
afterEach(() => h?.close());

/** Access lines of the log so far, as [allowed, reason]. */
function accessLines(harness: ServiceHarness): { allowed: boolean; reason: string }[] {
  return harness
    .logText()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { access?: string; allowed: boolean; reason: string })
    .filter((l) => l.access === "Authorize");
}

async function drive(env: Record<string, string>, allowedCalls: number, deniedCalls: number) {
  h = await createServiceHarness({ env });
  const { secret } = await h.keys.createKey({ owner: "acme" }, h.auth);
  for (let i = 0; i < allowedCalls; i++) {
    expect((await h.tollgate.authorize({ apiKey: secret })).allowed).toBe(true);
  }
  for (let i = 0; i < deniedCalls; i++) {
    expect((await h.tollgate.authorize({ apiKey: "" })).allowed).toBe(false);
  }
  const lines = accessLines(h);
  return {
    allowed: lines.filter((l) => l.allowed).length,
    denied: lines.filter((l) => !l.allowed).length,
  };
}

describe("access log modes", () => {
  it("denials (the default): every denial, and one allowed decision in 1/sample", async () => {
    expect(await drive({}, 300, 7)).toEqual({ allowed: 3, denied: 7 });
    await h?.close();
    expect(await drive({ TOLLGATE_ACCESS_LOG_SAMPLE: "0.1" }, 300, 2)).toEqual({
      allowed: 30,
      denied: 2,
    });
    await h?.close();
    expect(await drive({ TOLLGATE_ACCESS_LOG_SAMPLE: "0" }, 50, 2)).toEqual({
      allowed: 0,
      denied: 2,
    });
  });

  it("all (or true): every decision; off (or false): none", async () => {
    for (const v of ["all", "true"]) {
      expect(await drive({ TOLLGATE_ACCESS_LOG: v }, 40, 3)).toEqual({ allowed: 40, denied: 3 });
      await h?.close();
    }
    for (const v of ["off", "false"]) {
      expect(await drive({ TOLLGATE_ACCESS_LOG: v }, 40, 3)).toEqual({ allowed: 0, denied: 0 });
      await h?.close();
    }
    h = undefined;
  });

  it("refuses a mode or share it does not know, naming the setting", async () => {
    await expect(createServiceHarness({ env: { TOLLGATE_ACCESS_LOG: "some" } })).rejects.toThrow(
      /TOLLGATE_ACCESS_LOG/,
    );
    await expect(
      createServiceHarness({ env: { TOLLGATE_ACCESS_LOG_SAMPLE: "2" } }),
    ).rejects.toThrow(/TOLLGATE_ACCESS_LOG_SAMPLE/);
  });
});
