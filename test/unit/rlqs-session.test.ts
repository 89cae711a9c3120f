/**
 * One RLQS stream's ledger on the embedded store (a real store, fake clock):
 * what each report takes and gives back, why the live assignment's units stay
 * taken (Envoy may carry its token bucket over, and a report may include late
 * requests of the previous one), and what the stream's end gives back.
 */
import { describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/policy/policy.js";
import { matchRlqsBucket, type RlqsMatch } from "../../src/policy/rlqs-rules.js";
import { RlqsSession } from "../../src/ratelimit/rlqs-session.js";
import { MemoryRateLimitStore } from "../../src/store/memory-rate-limit-store.js";
import { ManualClock } from "../../src/util/clock.js";

const POLICY = `version: 1
default_tier: free
tiers: { free: {} }
rlqs:
  - domain: d
    buckets:
      - match: { name: "*" }
        quota: { requests: 30, per: day }
        local_share: 0.5
`;

function setup() {
  const clock = new ManualClock(Date.UTC(2026, 0, 5, 12));
  const store = new MemoryRateLimitStore(clock);
  const policy = parsePolicy(POLICY, "p.yaml");
  const match = matchRlqsBucket(policy.rlqs, "d", { name: "x" }) as RlqsMatch;
  const session = () => new RlqsSession({ store, failMode: () => "closed" });
  const item = { tag: match.tag, limit: match.bucket.limit };
  /** Units the store bucket has left. */
  const left = async () => (await store.peek([item]))[0]?.remaining;
  return { store, match, session, left };
}

describe("an RLQS stream's ledger", () => {
  it("takes the units per assignment on the first report, at once", async () => {
    const { match, session, left } = setup();
    const s = session();
    expect(await s.report("x", match, 0)).toEqual({ kind: "tokens", tokens: 15, ttlMs: 2000 });
    expect(await left()).toBe(15);
  });

  it("keeps the live assignment's units and gives back only what exceeds them", async () => {
    const { match, session, left } = setup();
    const s = session();
    await s.report("x", match, 0); // holds 15, live 15
    // 5 used: 10 held ≤ the live 15, nothing back; 15 more asked, 15 left in the bucket.
    expect(await s.report("x", match, 5)).toMatchObject({ kind: "tokens", tokens: 15 });
    expect(await left()).toBe(0);
    // 2 used: held 23, the live assignment keeps 15, 8 go back; then 8 taken (all there is).
    expect(await s.report("x", match, 2)).toMatchObject({ kind: "tokens", tokens: 8 });
    expect(await left()).toBe(0);
  });

  it("answers DENY_ALL for the TTL when the bucket is empty, and the next report gives the units back", async () => {
    const { match, session, left } = setup();
    const a = session();
    const b = session();
    await a.report("x", match, 0);
    await b.report("x", match, 0);
    expect(await a.report("x", match, 15)).toEqual({ kind: "deny", ttlMs: 2000 });
    // B used 5 of its 15; the live one stays; nothing comes back yet, nothing left to take.
    expect(await b.report("x", match, 5)).toEqual({ kind: "deny", ttlMs: 2000 });
    // Under DENY_ALL, B admits nothing more: its 10 unused go back on its next report, and are taken again.
    expect(await b.report("x", match, 0)).toEqual({ kind: "tokens", tokens: 10, ttlMs: 2000 });
    expect(await left()).toBe(0);
  });

  it("never counts more used than was taken (requests Envoy admitted on its own are not charged)", async () => {
    const { match, session, left } = setup();
    const s = session();
    await s.report("x", match, 0);
    // 40 reported under a 15-token assignment (e.g. no_assignment_behavior ALLOW_ALL):
    // held stays at 0, no debt, then 15 more taken.
    expect(await s.report("x", match, 40)).toMatchObject({ kind: "tokens", tokens: 15 });
    expect(await left()).toBe(0);
  });

  it("at the stream's end gives back the replaced assignments' unused units, never the live one's", async () => {
    const { match, session, left } = setup();
    const s = session();
    await s.report("x", match, 0);
    await s.report("x", match, 3); // held 27, live 15
    await s.close();
    expect(await left()).toBe(30 - 15 - 3);
  });

  it("abandons an unknown bucket and takes nothing for it", async () => {
    const { session, left } = setup();
    const s = session();
    expect(await s.report("y", undefined, 3)).toEqual({ kind: "abandon" });
    expect(s.size).toBe(0);
    expect(await left()).toBe(30);
  });
});
