/**
 * The override flags of `tollgate keys override` / `owners override`: the
 * request each combination makes, and the combinations refused before any
 * call (exit code 2).
 */
import { durationMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { OverrideUsageError, overrideFromFlags } from "../../src/cli/override-flags.js";

const NOW = Date.UTC(2026, 0, 1);

describe("overrideFromFlags", () => {
  it("numbers, an exemption, a removal; --expires as a duration or an ISO time", () => {
    const raise = overrideFromFlags(
      { limit: "per-key", requests: "100", burst: "200", period: "1m", expires: "7d" },
      NOW,
    );
    expect(raise).toMatchObject({ limit: "per-key", exempt: false, requests: 100n, burst: 200n });
    if (raise === "remove") throw new Error("not a removal");
    expect(durationMs(raise.period as Parameters<typeof durationMs>[0])).toBe(60_000);
    expect(timestampMs(raise.expireTime as Parameters<typeof timestampMs>[0])).toBe(
      NOW + 7 * 86_400_000,
    );
    const iso = overrideFromFlags(
      { limit: "per-key", exempt: true, expires: "2026-02-01T00:00:00Z" },
      NOW,
    );
    if (iso === "remove") throw new Error("not a removal");
    expect(iso).toMatchObject({ exempt: true, requests: 0n, burst: 0n });
    expect(timestampMs(iso.expireTime as Parameters<typeof timestampMs>[0])).toBe(
      Date.UTC(2026, 1, 1),
    );
    expect(overrideFromFlags({ limit: "per-key", remove: true })).toBe("remove");
  });

  it.each([
    [{}, "--limit NAME is required"],
    [{ limit: "x" }, "give --requests N"],
    [{ limit: "x", exempt: true, requests: "3" }, "not both"],
    [{ limit: "x", remove: true, requests: "3" }, "--remove takes only --limit"],
    [{ limit: "x", requests: "-1" }, "--requests: not a whole number"],
    [{ limit: "x", requests: "3", burst: "lots" }, "--burst: not a whole number"],
    [{ limit: "x", requests: "3", period: "60" }, "--period"],
    [{ limit: "x", requests: "3", expires: "soon" }, "--expires"],
  ])("refuses %j", (flags, message) => {
    expect(() => overrideFromFlags(flags, NOW)).toThrow(OverrideUsageError);
    expect(() => overrideFromFlags(flags, NOW)).toThrow(message);
  });
});
