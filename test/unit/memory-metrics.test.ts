/**
 * The `tollgate_memory_*` metrics: every tracked structure's entries and
 * estimated bytes, read on scrape, and its evictions as a counter; the only
 * label is the structure (a fixed list).
 */
import { describe, expect, it } from "vitest";
import { Metrics } from "../../src/observability/metrics.js";
import type { MemoryUsage } from "../../src/util/memory-usage.js";

describe("memory metrics", () => {
  it("reports each tracked structure's size on scrape, and evictions as they grow", async () => {
    const metrics = new Metrics(() => 0, { processMetrics: false });
    const usage: MemoryUsage = { entries: 3, bytes: 1200, evictions: 0 };
    metrics.trackMemory("ratelimit", () => usage);
    metrics.trackMemory("events", () => ({ entries: 0, bytes: 0, evictions: 0 }));
    let text = await metrics.registry.metrics();
    expect(text).toContain('tollgate_memory_entries{structure="ratelimit"} 3');
    expect(text).toContain('tollgate_memory_bytes{structure="ratelimit"} 1200');
    expect(text).toContain('tollgate_memory_evictions_total{structure="ratelimit"} 0');
    expect(text).toContain('tollgate_memory_entries{structure="events"} 0');
    Object.assign(usage, { entries: 9, bytes: 4000, evictions: 5 });
    text = await metrics.registry.metrics();
    expect(text).toContain('tollgate_memory_entries{structure="ratelimit"} 9');
    expect(text).toContain('tollgate_memory_evictions_total{structure="ratelimit"} 5');
    usage.evictions = 7;
    text = await metrics.registry.metrics();
    expect(text).toContain('tollgate_memory_evictions_total{structure="ratelimit"} 7');
  });
});
