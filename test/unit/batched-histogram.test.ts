import fc from "fast-check";
import { AggregatorRegistry, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { BatchedHistogram } from "../../src/observability/batched-histogram.js";

const BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
const options = (registry: Registry) => ({
  name: "tollgate_rpc_duration_seconds",
  help: "Time to handle an RPC, by method and result code.",
  labelNames: ["rpc", "code"] as const,
  buckets: BUCKETS,
  registers: [registry],
});
const labelsArb = fc.record({
  rpc: fc.constantFrom("Authorize", "CheckRateLimit", 'We"ird\\name\n'),
  code: fc.constantFrom("ok", "Unavailable"),
});
const valueArb = fc.oneof(
  fc.constantFrom(0, ...BUCKETS, 1.5, 30),
  fc.double({ min: 0, max: 2, noNaN: true }),
);

describe("BatchedHistogram (prom-client's exposition without its per-call label work)", () => {
  it("exposes what prom-client's Histogram exposes for the same observations, text and JSON", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(labelsArb, valueArb, fc.boolean()), { maxLength: 60 }),
        async (observations) => {
          const mine = new Registry();
          const theirs = new Registry();
          const b = new BatchedHistogram(options(mine));
          const h = new Histogram(options(theirs));
          const children = new Map<string, (v: number) => void>();
          for (const [labels, value, viaChild] of observations) {
            h.observe(labels, value);
            if (!viaChild) b.observe(labels, value);
            else {
              const k = `${labels.rpc}|${labels.code}`;
              const child = children.get(k) ?? b.child(labels);
              children.set(k, child);
              child(value);
            }
          }
          expect(await mine.metrics()).toBe(await theirs.metrics());
          expect(await mine.getMetricsAsJSON()).toEqual(await theirs.getMetricsAsJSON());
        },
      ),
      { numRuns: 300 },
    );
  });

  it("sums across workers as prom-client's AggregatorRegistry sums its own histograms", async () => {
    const workers = [0, 1, 2].map(() => {
      const mine = new Registry();
      const theirs = new Registry();
      return {
        mine,
        theirs,
        b: new BatchedHistogram(options(mine)),
        h: new Histogram(options(theirs)),
      };
    });
    for (const [i, w] of workers.entries()) {
      for (let n = 0; n <= i * 3; n++) {
        const labels = { rpc: n % 2 ? "Authorize" : "CheckRateLimit", code: "ok" };
        w.b.observe(labels, n / 1000);
        w.h.observe(labels, n / 1000);
      }
    }
    const merged = async (pick: (w: (typeof workers)[number]) => Registry) =>
      AggregatorRegistry.aggregate(
        await Promise.all(workers.map((w) => pick(w).getMetricsAsJSON())),
      ).metrics();
    expect(await merged((w) => w.mine)).toBe(await merged((w) => w.theirs));
  });

  it("forgets everything on reset, as Registry.resetMetrics expects", async () => {
    const r = new Registry();
    const b = new BatchedHistogram(options(r));
    b.observe({ rpc: "Authorize", code: "ok" }, 0.001);
    r.resetMetrics();
    expect(await r.metrics()).not.toMatch(/Authorize/);
  });
});
