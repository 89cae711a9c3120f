/**
 * The insurance limiter: while the store is unreachable and an endpoint fails
 * open, limits are enforced per replica in memory, each scaled to a configured
 * share of the real limit (with N replicas each allowing `share` of the limit,
 * the total stays near N × share of it). Same algorithm as the store: it is a
 * MemoryRateLimitStore over scaled copies of the limits.
 */
import type { Limit } from "../policy/policy.js";
import type { RateRequest, RateVerdict } from "../ratelimit/rate-limit-store.js";
import { MemoryRateLimitStore } from "../store/memory-rate-limit-store.js";
import type { Clock } from "../util/clock.js";
import type { MemoryBounds, MemoryUsage } from "../util/memory-usage.js";

/** Local stand-in for the rate-limit store. */
export class InsuranceLimiter {
  private readonly store: MemoryRateLimitStore;
  private readonly scaled = new WeakMap<Limit, Limit>();

  /**
   * `bounds`: entries and estimated bytes of its state, as for the embedded
   * store (default RATE_STORE_DEFAULTS): a Redis outage must not let distinct
   * subjects grow it without limit either.
   */
  constructor(
    clock: Clock,
    private readonly share: number,
    bounds: Partial<MemoryBounds> = {},
  ) {
    this.store = new MemoryRateLimitStore(clock, bounds);
  }

  /** Entries, estimated bytes and evictions, for the memory gauges. */
  usage(): MemoryUsage {
    return this.store.usage();
  }

  /** Decides locally with every limit scaled by the share. */
  decide(req: RateRequest): Promise<RateVerdict> {
    return this.store.decide({
      ...req,
      items: req.items.map((it) => ({ ...it, limit: this.scale(it.limit) })),
    });
  }

  private scale(l: Limit): Limit {
    let s = this.scaled.get(l);
    if (!s) {
      // A positive limit keeps at least 1, so a small limit still admits traffic.
      const part = (n: number) => (n === 0 ? 0 : Math.max(1, Math.floor(n * this.share)));
      s = {
        ...l,
        requests: part(l.requests),
        burst: part(l.burst),
        bucketId: `${l.bucketId}.local`,
        // A local credit balance starts at the share of the plan too.
        ...(l.credits && {
          credits: { ...l.credits, amount: part(l.credits.amount), cap: part(l.credits.cap) },
        }),
      };
      this.scaled.set(l, s);
    }
    return s;
  }
}
