/**
 * The notifier over real marker stores (embedded; a failing one): a decision
 * that crosses nothing claims nothing, a crossing is claimed once per replica
 * and raised once across replicas, an exhausted quota's refusals claim once
 * per replica however many there are, local (fail-open) and shadow decisions
 * raise nothing, and a failed claim raises nothing.
 */
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { Alert } from "../../src/events/event.js";
import type { NotificationMarks } from "../../src/events/notification-marks.js";
import { CLAIM_RETRY_MS, Notifier } from "../../src/events/notifier.js";
import { parsePolicy } from "../../src/policy/policy.js";
import type { RateDecision } from "../../src/ratelimit/rate-limiter.js";
import { MemoryNotificationMarks } from "../../src/store/memory-notification-marks.js";
import { ManualClock } from "../../src/util/clock.js";

const policy = parsePolicy(
  `version: 1
default_tier: free
tiers:
  free:
    limits:
      - { name: daily, by: key, quota: { requests: 100, per: day } }
      - { name: shadow-daily, by: key, quota: { requests: 100, per: day }, mode: shadow }
notifications: { quota: { thresholds: [80, 100] } }
`,
  "t",
);
const [daily, shadow] = policy.tiers.get("free")?.limits ?? [];
const who = { keyId: "key_a", owner: "acme", clientIp: "", subject: "", endpoint: undefined };

/** The embedded marker store, counting its claims. */
class CountingMarks extends MemoryNotificationMarks {
  claims = 0;
  override claim(tag: string, id: string, until: number): Promise<boolean> {
    this.claims++;
    return super.claim(tag, id, until);
  }
}

function replica(marks: NotificationMarks, clock: ManualClock, raised: Alert[]) {
  return new Notifier({
    marks,
    notifications: () => policy.notifications,
    raise: async (a) => {
      raised.push(a);
    },
    clock,
    log: pino({ level: "silent" }),
    rotationAgeMs: 0,
  });
}

/** A decision of cost 1 leaving `remaining` of `daily` (and of the shadow limit). */
function decision(remaining: number, o: { allowed?: boolean; local?: boolean } = {}): RateDecision {
  const allowed = o.allowed ?? true;
  const outcome = { exceeded: !allowed, remaining, resetMs: 3_600_000, retryMs: allowed ? 0 : -1 };
  return {
    allowed,
    reason: allowed ? "OK" : "RATE_LIMITED",
    limits: [
      { limit: daily as NonNullable<typeof daily>, outcome },
      { limit: shadow as NonNullable<typeof shadow>, outcome },
    ],
    headers: [],
    shadowExceeded: [],
    shadowSkipped: [],
    newBlocks: [],
    cost: 1,
    ...(o.local && { decidedLocally: true }),
  };
}

const settle = () => new Promise((r) => setTimeout(r, 10));

describe("the notifier", () => {
  it("claims nothing for decisions that cross nothing", async () => {
    const marks = new CountingMarks(new ManualClock(Date.UTC(2026, 0, 1, 12)));
    const raised: Alert[] = [];
    const n = replica(marks, new ManualClock(Date.UTC(2026, 0, 1, 12)), raised);
    for (let remaining = 99; remaining > 20; remaining--) n.charged(who, decision(remaining));
    await settle();
    expect(marks.claims).toBe(0);
    expect(raised).toEqual([]);
  });

  it("raises a crossing once across replicas sharing one store", async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
    const marks = new CountingMarks(clock);
    const raised: Alert[] = [];
    const [a, b] = [replica(marks, clock, raised), replica(marks, clock, raised)];
    // Both see a decision crossing 80 % (a retried request seen twice, say).
    a.charged(who, decision(20));
    b.charged(who, decision(20));
    await settle();
    expect(marks.claims).toBe(2);
    expect(raised).toHaveLength(1);
    expect(raised[0]).toMatchObject({
      rule: "quota-threshold",
      keyId: "key_a",
      owner: "acme",
      limit: "daily",
      thresholdPercent: 80,
      subject: "key_a",
      subjectKind: "key",
      severity: "medium",
    });
  });

  it("claims an exhausted quota's 100 % once per replica, however many refusals", async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
    const marks = new CountingMarks(clock);
    const raised: Alert[] = [];
    const [a, b] = [replica(marks, clock, raised), replica(marks, clock, raised)];
    a.charged(who, decision(0));
    for (let i = 0; i < 100; i++) {
      a.charged(who, decision(0, { allowed: false }));
      b.charged(who, decision(0, { allowed: false }));
    }
    await settle();
    expect(marks.claims).toBe(2);
    expect(raised.map((x) => x.thresholdPercent)).toEqual([100]);
  });

  it("raises nothing for local (fail-open) decisions or shadow limits", async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
    const marks = new CountingMarks(clock);
    const raised: Alert[] = [];
    const n = replica(marks, clock, raised);
    n.charged(who, decision(20, { local: true }));
    await settle();
    expect(marks.claims).toBe(0);
    // The enforced limit crossing fires; its shadow twin with the same outcome does not.
    n.charged(who, decision(20));
    await settle();
    expect(raised.map((x) => x.limit)).toEqual(["daily"]);
  });

  it("raises nothing when the claim fails, and claims again only after a pause", async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
    let fail = true;
    const inner = new MemoryNotificationMarks(clock);
    const marks: NotificationMarks = {
      claim: (tag, id, until) =>
        fail ? Promise.reject(new Error("store away")) : inner.claim(tag, id, until),
    };
    let claims = 0;
    const counted: NotificationMarks = {
      claim: (tag, id, until) => {
        claims++;
        return marks.claim(tag, id, until);
      },
    };
    const raised: Alert[] = [];
    const n = replica(counted, clock, raised);
    n.charged(who, decision(0, { allowed: false }));
    await settle();
    expect(raised).toEqual([]);
    fail = false;
    // Within the pause after a failure: refusals claim nothing.
    for (let i = 0; i < 10; i++) n.charged(who, decision(0, { allowed: false }));
    await settle();
    expect(claims).toBe(1);
    clock.advance(CLAIM_RETRY_MS);
    n.charged(who, decision(0, { allowed: false }));
    await settle();
    expect(claims).toBe(2);
    expect(raised.map((x) => x.thresholdPercent)).toEqual([100]);
  });
});
