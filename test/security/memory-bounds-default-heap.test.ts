/**
 * Memory bounds of the embedded store under attack (issue "Hardening", point 5),
 * as the issue measured them: each kind of hostile input alone, 150 000
 * distinct inputs, against a fresh built server with V8's default heap — RSS
 * must stay under 400 MB throughout (before the bounds: 768 MB for unknown
 * keys, 477 MB for subjects, 429 MB for IPs, 729 MB for events) and every size
 * gauge within its default bound. V8 lets garbage grow to a multiple of the
 * live heap before a full collection, so this is the bound with the least
 * headroom; memory-bounds.test.ts shows the live state of all kinds together
 * fits a 200 MB heap.
 */
import { afterAll, describe, it } from "vitest";
import { ATTACKS, N, report, Target } from "./memory-attacks.js";

afterAll(() => console.log(`memory bounds, default heap:\n  ${report.join("\n  ")}`));

describe(`each kind alone, ${N} distinct inputs, V8's default heap`, () => {
  for (const a of ATTACKS) {
    it(`${a.kind}: RSS stays under 400 MB`, async () => {
      const target = await Target.start([]);
      try {
        await target.attack(a, "default heap");
        await target.expectWithinBounds(a.bounds);
      } finally {
        await target.stop();
      }
    }, 180_000);
  }
});
