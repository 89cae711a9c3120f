/**
 * The overview's counters hold a bounded number of entries whatever the
 * traffic: at most TALLY_ENTRIES_PER_MINUTE keys and as many IPs per minute,
 * for TALLY_MINUTES minutes; what a full minute cannot name is still counted.
 */
import { describe, expect, it } from "vitest";
import {
  DenialTally,
  RATE_SECONDS,
  TALLY_ENTRIES_PER_MINUTE,
  TALLY_MINUTES,
} from "../../src/console/denial-tally.js";
import type { DecisionLine } from "../../src/decision/decision-feed.js";

const T0 = Date.UTC(2026, 0, 1);
const line = (at: number, over: Partial<DecisionLine> = {}): DecisionLine => ({
  at,
  rpc: "Authorize",
  decisionId: "d",
  allowed: false,
  reason: "UNKNOWN_KEY",
  latencyMs: 1,
  ...over,
});

describe("DenialTally", () => {
  it("ranks the most denied keys and IPs of the last hour", () => {
    const t = new DenialTally();
    for (let i = 0; i < 3; i++) t.add(line(T0, { keyId: "k1", clientIp: "203.0.113.1" }));
    t.add(line(T0, { keyId: "k2", clientIp: "203.0.113.2" }));
    t.add(line(T0, { allowed: true, reason: "OK", keyId: "k3" }));
    const s = t.snapshot(T0);
    expect(s.topDeniedKeys).toEqual([
      { subject: "k1", denials: 3 },
      { subject: "k2", denials: 1 },
    ]);
    expect(s.topDeniedIps[0]).toEqual({ subject: "203.0.113.1", denials: 3 });
    expect(s.byReason).toEqual({ UNKNOWN_KEY: 4, OK: 1 });
    expect(s.perSecond).toHaveLength(RATE_SECONDS);
    expect(s.perSecond.at(-1)).toMatchObject({ allowed: 1, denied: 4 });
    // An hour later the denials have aged out.
    expect(t.snapshot(T0 + TALLY_MINUTES * 60_000).topDeniedKeys).toEqual([]);
  });

  it("holds at most the documented number of entries, counting the rest as other", () => {
    const t = new DenialTally();
    const perMinute = TALLY_ENTRIES_PER_MINUTE * 3;
    for (let m = 0; m < TALLY_MINUTES * 2; m++) {
      for (let i = 0; i < perMinute; i++) {
        t.add(line(T0 + m * 60_000, { keyId: `k${m}-${i}`, clientIp: `10.0.${m}.${i % 250}` }));
      }
    }
    expect(t.entries).toBeLessThanOrEqual(TALLY_MINUTES * TALLY_ENTRIES_PER_MINUTE * 2);
    const s = t.snapshot(T0 + (TALLY_MINUTES * 2 - 1) * 60_000);
    expect(s.otherDenials.keys).toBe(TALLY_MINUTES * (perMinute - TALLY_ENTRIES_PER_MINUTE));
  });
});
