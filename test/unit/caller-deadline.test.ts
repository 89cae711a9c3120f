/** The caller's deadline as store calls see it (resilience/caller-deadline.ts). */
import { describe, expect, it } from "vitest";
import { beforeDeadline, storeDeadline } from "../../src/resilience/caller-deadline.js";
import { StoreUnavailableError } from "../../src/store/store-errors.js";

describe("storeDeadline", () => {
  it("is none without a caller deadline, or when the command budget is the shorter bound", () => {
    expect(storeDeadline(undefined, 250)).toBeUndefined();
    // 1000 ms less 20 % is 800 ms: the 250 ms budget bounds the call anyway.
    expect(storeDeadline(1_000, 250)).toBeUndefined();
  });

  it("keeps 20 % of the caller's time, at least 5 ms, for the answer", () => {
    const now = performance.now();
    // Envoy's rate-limit budget: 20 ms less 5 ms.
    expect((storeDeadline(20, 250) ?? 0) - now).toBeCloseTo(15, 0);
    // Envoy's ext_authz budget: 200 ms less 40 ms.
    expect((storeDeadline(200, 250) ?? 0) - now).toBeCloseTo(160, 0);
    // A deadline already too close: give up at once.
    expect((storeDeadline(3, 250) ?? Number.NaN) - now).toBeLessThanOrEqual(1);
  });
});

describe("beforeDeadline", () => {
  it("is the promise itself without a deadline", () => {
    const p = Promise.resolve(1);
    expect(beforeDeadline(p, undefined, "op")).toBe(p);
  });

  it("passes the outcome through when it comes in time", async () => {
    await expect(beforeDeadline(Promise.resolve(7), performance.now() + 1_000, "op")).resolves.toBe(
      7,
    );
    const boom = new Error("boom");
    await expect(
      beforeDeadline(Promise.reject(boom), performance.now() + 1_000, "op"),
    ).rejects.toBe(boom);
  });

  it("fails as a store timeout when the deadline passes first, and swallows the late outcome", async () => {
    const late = new Promise<number>((_, reject) =>
      setTimeout(() => reject(new Error("late")), 60),
    );
    const start = performance.now();
    const err = await beforeDeadline(late, performance.now() + 20, "ratelimit.decide").catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect((err as StoreUnavailableError).kind).toBe("timeout");
    expect((err as StoreUnavailableError).op).toBe("ratelimit.decide");
    expect(performance.now() - start).toBeLessThan(55);
    // An already passed deadline fails at once.
    await expect(
      beforeDeadline(new Promise(() => {}), performance.now() - 1, "op"),
    ).rejects.toBeInstanceOf(StoreUnavailableError);
    // The late rejection must not surface as unhandled (vitest fails the run if it does).
    await new Promise((r) => setTimeout(r, 80));
  });
});
