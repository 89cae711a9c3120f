import type { Clock } from "../util/clock.js";
import {
  bucketStart,
  type UsageCounts,
  type UsageIncrement,
  type UsageResolution,
  type UsageStore,
} from "./usage-store.js";

/** Writes between sweeps of expired counters. */
const SWEEP_EVERY = 1000;

/** The embedded usage store: counters in process memory, expiring after the retention. */
export class MemoryUsageStore implements UsageStore {
  private readonly map = new Map<string, { counts: UsageCounts; expiresAt: number }>();
  private writes = 0;

  constructor(
    private readonly clock: Clock,
    private readonly retentionMs: number,
  ) {}

  async add(increments: readonly UsageIncrement[]): Promise<void> {
    const now = this.clock.now();
    for (const inc of increments) {
      for (const res of ["minute", "hour"] as const) {
        const k = `${res}\u0000${inc.keyId}\u0000${bucketStart(inc.at, res)}`;
        let e = this.map.get(k);
        if (!e || e.expiresAt <= now) {
          e = { counts: {}, expiresAt: now + this.retentionMs };
          this.map.set(k, e);
        }
        e.counts[inc.endpoint] = (e.counts[inc.endpoint] ?? 0) + inc.requests;
      }
      if (++this.writes % SWEEP_EVERY === 0) {
        for (const [k, e] of this.map) if (e.expiresAt <= now) this.map.delete(k);
      }
    }
  }

  async read(
    keyId: string,
    resolution: UsageResolution,
    starts: readonly number[],
  ): Promise<UsageCounts[]> {
    const now = this.clock.now();
    return starts.map((s) => {
      const e = this.map.get(`${resolution}\u0000${keyId}\u0000${s}`);
      return e && e.expiresAt > now ? { ...e.counts } : {};
    });
  }
}
