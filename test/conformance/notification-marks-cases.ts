/**
 * The notification marker contract (events/notification-marks.ts), one suite
 * for every implementation: the embedded store (manual clock), Redis
 * standalone and a real 3-master Redis Cluster. A marker is taken by exactly
 * one of many concurrent claims, stays taken until its period ends, and is
 * free again after; markers of different subjects or ids are independent.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { NotificationMarks } from "../../src/events/notification-marks.js";

/** What an implementation hands the shared cases. */
export interface NotificationMarksHarness {
  marks: NotificationMarks;
  /** Lets `ms` pass: moves a manual clock, or sleeps on a real store. */
  wait(ms: number): Promise<void>;
  /** "Now" as the harness's clock sees it (epoch ms). */
  now(): number;
}

/** Registers the cases for one implementation. */
export function notificationMarksCases(name: string, make: () => NotificationMarksHarness): void {
  describe(`${name}: notification markers`, () => {
    const fresh = () => `k:key_${randomUUID()}`;

    it("is taken by exactly one of many concurrent claims", async () => {
      const { marks, now } = make();
      const tag = fresh();
      const results = await Promise.all(
        Array.from({ length: 50 }, () => marks.claim(tag, "q:daily:day1:80", now() + 60_000)),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
    });

    it("stays taken until its period ends, then is free again", async () => {
      const { marks, now, wait } = make();
      const tag = fresh();
      expect(await marks.claim(tag, "ke:1", now() + 1500)).toBe(true);
      expect(await marks.claim(tag, "ke:1", now() + 1500)).toBe(false);
      await wait(600);
      expect(await marks.claim(tag, "ke:1", now() + 1500)).toBe(false);
      await wait(1400);
      expect(await marks.claim(tag, "ke:1", now() + 1500)).toBe(true);
    });

    it("keeps markers of other ids and other subjects apart", async () => {
      const { marks, now } = make();
      const [a, b] = [fresh(), fresh()];
      const until = now() + 60_000;
      expect(await marks.claim(a, "q:daily:day1:80", until)).toBe(true);
      expect(await marks.claim(a, "q:daily:day1:90", until)).toBe(true);
      expect(await marks.claim(a, "q:daily:day2:80", until)).toBe(true);
      expect(await marks.claim(b, "q:daily:day1:80", until)).toBe(true);
      expect(await marks.claim(a, "q:daily:day1:80", until)).toBe(false);
    });

    it("holds a marker whose period already ended for a second at least", async () => {
      const { marks, now } = make();
      const tag = fresh();
      expect(await marks.claim(tag, "late", now() - 10_000)).toBe(true);
      expect(await marks.claim(tag, "late", now() - 10_000)).toBe(false);
    });

    it("takes subjects holding hash-tag characters as they are", async () => {
      const { marks, now } = make();
      const tag = `s:{odd}:${randomUUID()}%7B`;
      expect(await marks.claim(tag, "q:x:day1:50", now() + 60_000)).toBe(true);
      expect(await marks.claim(tag, "q:x:day1:50", now() + 60_000)).toBe(false);
      expect(await marks.claim(`s:%7Bodd%7D:${tag.slice(8)}`, "q:x:day1:50", now() + 60_000)).toBe(
        true,
      );
    });
  });
}
