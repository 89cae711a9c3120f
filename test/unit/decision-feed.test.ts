/** The live decision feed: filters, a bounded queue per subscriber, a bounded number of subscribers. */
import { describe, expect, it } from "vitest";
import {
  DecisionFeed,
  type DecisionLine,
  MAX_SUBSCRIBERS,
  RECENT_LINES,
  SUBSCRIBER_QUEUE,
} from "../../src/decision/decision-feed.js";

const line = (o: Partial<DecisionLine> = {}): DecisionLine => ({
  at: 0,
  rpc: "Authorize",
  decisionId: "d",
  allowed: true,
  reason: "OK",
  latencyMs: 0.1,
  ...o,
});

describe("DecisionFeed", () => {
  it("is inactive without subscribers, and delivers to each subscriber what its filter passes", async () => {
    const feed = new DecisionFeed();
    expect(feed.active).toBe(false);
    const all = feed.subscribe();
    const denied = feed.subscribe({ deniedOnly: true });
    const oneKey = feed.subscribe({ keyId: "key_a" });
    expect(feed.active).toBe(true);
    feed.publish(line({ keyId: "key_a" }));
    feed.publish(line({ keyId: "key_b", allowed: false, reason: "RATE_LIMITED" }));
    expect((await all?.next())?.keyId).toBe("key_a");
    expect((await all?.next())?.keyId).toBe("key_b");
    expect((await denied?.next())?.reason).toBe("RATE_LIMITED");
    expect((await oneKey?.next())?.keyId).toBe("key_a");
  });

  it("wakes a waiting subscriber, and ends it on close", async () => {
    const feed = new DecisionFeed();
    const s = feed.subscribe();
    const pending = s?.next();
    feed.publish(line({ decisionId: "x" }));
    expect((await pending)?.decisionId).toBe("x");
    const after = s?.next();
    s?.close();
    expect(await after).toBeUndefined();
    expect(feed.size).toBe(0);
  });

  it("drops the oldest lines of a subscriber that falls behind, counting them", async () => {
    const feed = new DecisionFeed();
    const s = feed.subscribe();
    for (let i = 0; i < SUBSCRIBER_QUEUE + 5; i++) feed.publish(line({ decisionId: String(i) }));
    expect(s?.dropped).toBe(5);
    expect((await s?.next())?.decisionId).toBe("5");
  });

  it("refuses subscribers beyond MAX_SUBSCRIBERS", () => {
    const feed = new DecisionFeed();
    for (let i = 0; i < MAX_SUBSCRIBERS; i++) expect(feed.subscribe()).toBeDefined();
    expect(feed.subscribe()).toBeUndefined();
  });
});

describe("DecisionFeed's ring of recent decisions", () => {
  it("hands a new subscriber the last lines its filter passes, oldest first, then new ones", async () => {
    const feed = new DecisionFeed();
    for (let i = 0; i < 5; i++) feed.publish(line({ decisionId: String(i), allowed: i % 2 === 0 }));
    const s = feed.subscribe({ deniedOnly: false }, { backlog: 2 });
    const denied = feed.subscribe({ deniedOnly: true }, { backlog: 10 });
    expect(s?.queued).toBe(2);
    feed.publish(line({ decisionId: "5" }));
    const got = [await s?.next(), await s?.next(), await s?.next()].map((l) => l?.decisionId);
    expect(got).toEqual(["3", "4", "5"]);
    expect([await denied?.next(), await denied?.next()].map((l) => l?.decisionId)).toEqual([
      "1",
      "3",
    ]);
  });

  it("holds RECENT_LINES lines at most, whoever listens", () => {
    const feed = new DecisionFeed();
    for (let i = 0; i < RECENT_LINES * 3; i++) feed.publish(line({ decisionId: String(i) }));
    const s = feed.subscribe({}, { backlog: RECENT_LINES + 50 });
    expect(s?.queued).toBe(RECENT_LINES);
    expect((feed as unknown as { recent: unknown[] }).recent).toHaveLength(RECENT_LINES);
  });
});
