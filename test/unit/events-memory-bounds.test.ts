/**
 * Memory bounds of the embedded event, detection and usage stores: each holds
 * at most its entries and estimated bytes, evicts in the documented order
 * (events, alerts, usage: oldest first; detection: cool-downs, then the state
 * holding the least evidence), and reports its size.
 */
import { describe, expect, it } from "vitest";
import type { WindowOp } from "../../src/events/detection-store.js";
import type { Alert, SecurityEvent } from "../../src/events/event.js";
import { MemoryDetectionStore } from "../../src/store/memory-detection-store.js";
import { eventBytes, MemoryEventStore } from "../../src/store/memory-event-store.js";
import { MemoryUsageStore } from "../../src/store/memory-usage-store.js";
import { ManualClock } from "../../src/util/clock.js";

const DAY = 86_400_000;

let seq = 0;
function event(over: Partial<SecurityEvent> = {}): SecurityEvent {
  return {
    id: `ev-${++seq}`,
    type: "login_failed",
    subject: "user",
    subjectKind: "caller",
    endpoint: "",
    severity: "low",
    attributes: {},
    time: 0,
    clientIp: "",
    keyId: "",
    ...over,
  };
}

function alert(i: number): Alert {
  return {
    id: `al-${i}`,
    rule: "brute-force",
    severity: "high",
    subject: `10.0.0.${i % 256}`,
    subjectKind: "ip",
    message: "brute-force: ip 10.0.0.1: 20 events (auth_failure) within 60s".padEnd(300, "."),
    firedAt: 0,
  };
}

describe("embedded event store: memory bounds", () => {
  const retention = { maxAgeMs: DAY, maxEvents: 1000, maxAlerts: 100 };

  it("estimates an event's bytes from its strings", () => {
    const small = eventBytes(event());
    const big = eventBytes(event({ attributes: { a: "x".repeat(10_000) } }));
    expect(big - small).toBeGreaterThan(10_000);
    // Past Latin-1, V8 stores two bytes per character.
    expect(eventBytes(event({ subject: "é".repeat(1000) }))).toBeLessThan(
      eventBytes(event({ subject: "ж".repeat(1000) })) - 900,
    );
  });

  it("holds at most maxEvents events and maxEventBytes bytes, dropping the oldest", async () => {
    const clock = new ManualClock();
    const store = new MemoryEventStore(clock, retention, { maxEventBytes: 100_000 });
    const attributes = { blob: "b".repeat(2000) };
    for (let i = 0; i < 500; i++) {
      await store.append([event({ id: `e${i}`, attributes })]);
      expect(store.usage().events.bytes).toBeLessThanOrEqual(100_000);
    }
    const { entries, bytes, evictions } = store.usage().events;
    expect(entries).toBeLessThan(50);
    expect(entries + evictions).toBe(500);
    expect(bytes).toBeGreaterThan(90_000);
    const page = await store.list({}, 1000);
    expect(page.items[0]?.id).toBe("e499"); // newest first
    expect(page.items.at(-1)?.id).toBe(`e${500 - entries}`);

    const counted = new MemoryEventStore(clock, { ...retention, maxEvents: 10 });
    for (let i = 0; i < 50; i++) await counted.append([event()]);
    expect(counted.usage().events).toMatchObject({ entries: 10, evictions: 40 });
  });

  it("recognises a duplicate id while its event is held, and forgets the id with the event", async () => {
    const clock = new ManualClock();
    const store = new MemoryEventStore(clock, { ...retention, maxEvents: 10 });
    expect((await store.append([event({ id: "first" })])).accepted).toEqual(["first"]);
    expect((await store.append([event({ id: "first" })])).duplicates).toEqual(["first"]);
    for (let i = 0; i < 10; i++) await store.append([event()]);
    // "first" was pushed out of the ring: its id went with it (the ids need no bound of their own).
    expect((await store.append([event({ id: "first" })])).accepted).toEqual(["first"]);
    // And by age.
    clock.advance(DAY);
    expect((await store.append([event({ id: "first" })])).accepted).toEqual(["first"]);
    expect((await store.append([event({ id: "first" })])).duplicates).toEqual(["first"]);
  });

  it("holds at most maxAlerts alerts and maxAlertBytes bytes", async () => {
    const clock = new ManualClock();
    const store = new MemoryEventStore(clock, retention, { maxAlertBytes: 20_000 });
    for (let i = 0; i < 300; i++) await store.appendAlert(alert(i));
    const a = store.usage().alerts;
    expect(a.bytes).toBeLessThanOrEqual(20_000);
    expect(a.entries).toBeLessThan(100);
    expect((await store.listAlerts({}, 10)).items[0]?.id).toBe("al-299");
  });

  it("drops an event larger than the whole byte bound, and forgets nothing else for it", async () => {
    const clock = new ManualClock();
    const store = new MemoryEventStore(clock, retention, { maxEventBytes: 10_000 });
    await store.append([event({ id: "huge", attributes: { a: "x".repeat(20_000) } })]);
    expect(store.usage().events.entries).toBe(0);
    expect((await store.append([event({ id: "huge" })])).accepted).toEqual(["huge"]);
  });
});

describe("embedded detection store: memory bounds", () => {
  const op = (tag: string, member: string, over: Partial<WindowOp> = {}): WindowOp => ({
    tag,
    rule: "brute-force",
    mode: "count",
    members: [member],
    windowMs: 60_000,
    threshold: 20,
    cap: 20,
    cooldownMs: 300_000,
    ...over,
  });

  it("holds at most maxEntries states and maxBytes bytes", async () => {
    const clock = new ManualClock();
    const store = new MemoryDetectionStore(clock, { maxEntries: 1000, maxBytes: 300_000 });
    for (let i = 0; i < 10_000; i++) {
      await store.window(op(`i:10.0.${i >> 8}.${i & 255}`, `ev-${i}`));
      const u = store.usage();
      expect(u.entries).toBeLessThanOrEqual(1000);
      expect(u.bytes).toBeLessThanOrEqual(300_000);
    }
    expect(store.usage().evictions).toBeGreaterThan(8000);
  });

  it("keeps a window close to firing through a flood of one-event windows: it still fires", async () => {
    const clock = new ManualClock();
    const store = new MemoryDetectionStore(clock, { maxEntries: 500, maxBytes: 1024 ** 3 });
    for (let i = 0; i < 19; i++) await store.window(op("i:203.0.113.9", `ev-attacker-${i}`));
    for (let i = 0; i < 20_000; i++) await store.window(op(`i:flood-${i}`, `ev-${i}`));
    const last = await store.window(op("i:203.0.113.9", "ev-attacker-19"));
    expect(last).toEqual({ count: 20, fired: true });
  });

  it("evicts cool-downs first: a lost one can only let an alert fire again, never hide one", async () => {
    const clock = new ManualClock();
    const store = new MemoryDetectionStore(clock, { maxEntries: 300, maxBytes: 1024 ** 3 });
    // 100 subjects fire (a window with 2 members + a cool-down each)…
    for (let i = 0; i < 100; i++) {
      await store.window(op(`i:a-${i}`, "m1", { threshold: 2 }));
      expect((await store.window(op(`i:a-${i}`, "m2", { threshold: 2 }))).fired).toBe(true);
    }
    // …then 150 one-member windows: the 100 cool-downs go before any window.
    for (let i = 0; i < 150; i++) await store.window(op(`i:b-${i}`, "m"));
    expect(store.usage().evictions).toBeGreaterThan(0);
    let again = 0;
    for (let i = 0; i < 100; i++) {
      // Each window kept its two members; cool-downs were forgotten, so some fire again.
      const r = await store.window(op(`i:a-${i}`, "m3", { threshold: 2 }));
      expect(r.count).toBe(3);
      if (r.fired) again++;
    }
    expect(again).toBeGreaterThan(0);
  });
});

describe("embedded usage store: memory bounds", () => {
  it("holds at most maxEntries buckets and maxBytes bytes, dropping the oldest first", async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const store = new MemoryUsageStore(clock, 7 * DAY, { maxEntries: 1000, maxBytes: 1024 ** 3 });
    const at = clock.now();
    for (let m = 0; m < 2000; m++) {
      await store.add([{ keyId: "key_a", endpoint: "orders", at: at + m * 60_000, requests: 1 }]);
      expect(store.usage().entries).toBeLessThanOrEqual(1000);
    }
    const [oldest, newest] = await store.read("key_a", "minute", [at, at + 1999 * 60_000]);
    expect(oldest).toEqual({});
    expect(newest).toEqual({ orders: 1 });
    const bytes = new MemoryUsageStore(clock, 7 * DAY, { maxEntries: 1e6, maxBytes: 100_000 });
    for (let k = 0; k < 2000; k++) {
      await bytes.add([{ keyId: `key_${k}`, endpoint: "orders", at, requests: 1 }]);
      expect(bytes.usage().bytes).toBeLessThanOrEqual(100_000);
    }
    expect(bytes.usage().evictions).toBeGreaterThan(0);
  });
});
