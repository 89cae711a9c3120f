/**
 * `sync: batched` limits: decided in memory from allotments each replica takes
 * from the shared store in batches, instead of one store round trip per
 * decision (what Gubernator's GLOBAL behaviour, Limitador's cached storage and
 * Kong's `sync_rate` trade accuracy for; here the trade is one-sided).
 *
 * A replica takes `takeSize(limit)` cost units (local_share × burst) from a
 * bucket in one atomic store step (`take`), charged there exactly as that many
 * decisions would charge it; decisions then spend them locally. Unused units go
 * back (`giveBack`) once the allotment is `flush_interval` old, when it is
 * evicted, and at shutdown. So:
 *
 *  - **Never more than the limit**: every admission spends a unit the store
 *    has already charged. With the store answering, a batched limit admits at
 *    most what the exact limit would over any window.
 *  - **At least the limit − R × take** (R replicas): units held by other
 *    replicas are the most that can be idle; each goes back within
 *    flush_interval of its take. `tollgate check-config` prints this per limit.
 *  - **Store down**: a replica keeps deciding from the units it holds (the
 *    decision says decided_locally); when they run out the store failure
 *    reaches the rate limiter, which decides by the endpoint's fail mode (the
 *    insurance share when it fails open). A give-back that fails is not
 *    retried: a unit given back twice would be admitted twice, a unit lost is
 *    only admitted once less. Nothing is counted twice when the store returns.
 *  - **All or nothing** across a decision's limits: batched units are reserved
 *    before the exact limits' store call and put back if it denies; a batched
 *    limit that cannot pay denies the whole decision without charging anything
 *    (the store is told, as for an exact denial, so blocking counts it).
 *
 * Blocks are not re-checked in the store for a decision whose limits are all
 * batched: the decision engine has checked this replica's block cache, which
 * every replica's blocks reach through the invalidation bus (block-book.ts).
 */
import { type Limit, takeSize } from "../policy/policy.js";
import { isStoreUnavailable } from "../store/store-errors.js";
import type { Clock } from "../util/clock.js";
import { type MemoryUsage, stringBytes } from "../util/memory-usage.js";
import type {
  LimitItem,
  LimitOutcome,
  RateLimitStore,
  RateRequest,
  RateVerdict,
} from "./rate-limit-store.js";

/** Most allotments held at once (distinct batched buckets); past it the oldest goes back. */
export const MAX_ALLOTMENTS = 10_000;
/** Estimated heap bytes of one allotment besides its key: Map slot, object, outcome, numbers. */
const ALLOTMENT_BYTES = 200;
/** How often held allotments are checked for their flush_interval, ms. */
const SWEEP_MS = 50;
/** Takes one decision may make for one limit before it denies (others spend what it took). */
const TAKE_ATTEMPTS = 3;

/** Units of one bucket this replica holds. */
interface Allotment {
  item: LimitItem;
  /** Units held, not yet spent (reserved units are already subtracted). */
  units: number;
  /** When the last take got units (ms): they go back flush_interval after it. */
  takenAt: number;
  /** The bucket as the last take left it. */
  after: LimitOutcome;
  /** The take under way, shared by the decisions waiting for it. */
  pending?: Promise<void>;
  /** The store error of the last take, if it failed. */
  failed?: unknown;
  /**
   * Until when (ms) the bucket counts as empty: a take that came back short
   * is not repeated before then, so requests past the limit are denied
   * without a round trip each (see backoffMs).
   */
  emptyUntil: number;
}

/** Options of BatchedRateLimitStore. */
export interface BatchedStoreOptions {
  clock: Clock;
  /** Most allotments held (default MAX_ALLOTMENTS). */
  maxAllotments?: number;
  /** True while the store is known to be down (its breaker or health ping): decisions say so. */
  storeDown?: () => boolean;
}

/** A RateLimitStore that decides batched limits in memory (see the file comment). */
export class BatchedRateLimitStore implements RateLimitStore {
  private readonly held = new Map<string, Allotment>();
  private readonly max: number;
  private readonly timer: NodeJS.Timeout;
  /** Set when a take or give-back found the store unreachable; cleared by one that worked. */
  private unreachable = false;
  private takes = 0;
  private evictions = 0;
  /** Estimated bytes held (ALLOTMENT_BYTES + the key's length per allotment). */
  private bytes = 0;

  constructor(
    private readonly inner: RateLimitStore,
    private readonly o: BatchedStoreOptions,
  ) {
    this.max = o.maxAllotments ?? MAX_ALLOTMENTS;
    this.timer = setInterval(() => this.sweep(this.o.clock.now()), SWEEP_MS);
    this.timer.unref();
  }

  /** Allotments held now, and takes made since start (for tests). */
  stats(): { allotments: number; takes: number } {
    return { allotments: this.held.size, takes: this.takes };
  }

  /** Allotments held, their estimated bytes and evictions, for the memory gauges. */
  usage(): MemoryUsage {
    return { entries: this.held.size, bytes: this.bytes, evictions: this.evictions };
  }

  async decide(req: RateRequest): Promise<RateVerdict> {
    const batched: number[] = [];
    req.items.forEach((it, i) => {
      if (it.limit.batch && it.limit.kind !== "credits") batched.push(i);
    });
    if (batched.length === 0 || req.deny) return this.inner.decide(req);
    const costOf = (i: number) => (req.items[i] as LimitItem).cost || req.cost;

    // Reserve every batched limit's units (taking more where short), so no
    // concurrent decision can spend them while the exact limits are asked.
    const reserved: (Allotment | undefined)[] = [];
    let denied = false;
    let failure: unknown;
    for (const i of batched) {
      const item = req.items[i] as LimitItem;
      const a = await this.reserve(item, costOf(i));
      if (a === undefined || a instanceof TakeFailed) {
        if (a instanceof TakeFailed) failure = a.err;
        if (item.limit.mode !== "shadow") denied = true;
        reserved.push(undefined);
      } else reserved.push(a);
    }
    const release = () =>
      reserved.forEach((a, j) => {
        if (a) this.putBack(a, costOf(batched[j] as number));
      });
    if (denied && failure !== undefined) {
      // The store cannot be reached for units this decision needs: the rate
      // limiter decides by the fail mode.
      release();
      throw failure;
    }
    const exact = req.items.filter((_, i) => !batched.includes(i));
    let v: RateVerdict | undefined;
    if (denied) {
      release();
      // Denied in memory: the store charges nothing, reports the exact limits
      // as they stand and counts the denial toward blocks.
      if (exact.length > 0 || (req.blocking && req.blockTags.length > 0)) {
        v = await this.inner.decide({ ...req, items: exact, deny: true });
        if (v.status === "blocked") return this.merge(req, batched, v, reserved, false);
      }
      return this.merge(req, batched, v, reserved, false, "limited");
    }
    if (exact.length > 0) {
      try {
        v = await this.inner.decide({ ...req, items: exact });
      } catch (err) {
        release();
        throw err;
      }
      if (v.status !== "ok") {
        release();
        return this.merge(req, batched, v, reserved, false);
      }
    }
    return this.merge(req, batched, v, reserved, true, "ok");
  }

  /**
   * Reserves `cost` units of the item's allotment, taking more from the store
   * when it holds fewer. Undefined: the bucket has too few (the limit denies);
   * TakeFailed: the store could not be reached and the allotment is short.
   */
  private async reserve(
    item: LimitItem,
    cost: number,
  ): Promise<Allotment | TakeFailed | undefined> {
    const key = keyOf(item);
    for (let attempt = 0; attempt < TAKE_ATTEMPTS; attempt++) {
      let a = this.held.get(key);
      if (a && a.units >= cost) {
        a.units -= cost;
        return a;
      }
      if (!a) {
        a = {
          item,
          units: 0,
          takenAt: 0,
          after: { exceeded: false, remaining: 0, resetMs: 0, retryMs: 0 },
          emptyUntil: 0,
        };
        this.held.set(key, a);
        this.bytes += ALLOTMENT_BYTES + stringBytes(key);
        if (this.held.size > this.max) this.evictOldest();
      }
      // Short, and the store was found empty a moment ago: the limit is reached.
      if (a.pending === undefined && this.o.clock.now() < a.emptyUntil) return undefined;
      a.pending ??= this.refill(a, Math.max(cost, takeSize(item.limit)));
      await a.pending;
      if (a.failed !== undefined && a.units < cost) return new TakeFailed(a.failed);
      if (a.units >= cost) {
        a.units -= cost;
        return a;
      }
      // The bucket had less than asked for: the limit is reached.
      if (a.after.exceeded) return undefined;
    }
    return undefined;
  }

  /**
   * Returns reserved units to their allotment, or to the store if the
   * allotment was flushed or evicted meanwhile (its units went back then).
   */
  private putBack(a: Allotment, units: number): void {
    if (this.held.get(keyOf(a.item)) === a) a.units += units;
    else this.inner.giveBack(a.item, units).catch(() => {});
  }

  /** One take into `a` (its `pending` until it settles). */
  private async refill(a: Allotment, want: number): Promise<void> {
    try {
      this.takes++;
      const r = await this.inner.take(a.item, want);
      a.units += r.taken;
      a.after = r.outcome;
      const now = this.o.clock.now();
      if (r.taken > 0) a.takenAt = now;
      if (r.taken < want) a.emptyUntil = now + backoffMs(a.item.limit);
      a.failed = undefined;
      this.unreachable = false;
    } catch (err) {
      a.failed = err;
      if (isStoreUnavailable(err)) this.unreachable = true;
    } finally {
      a.pending = undefined;
    }
  }

  /**
   * The verdict: the exact limits' outcomes from the store call (if any), the
   * batched ones from their allotments. `spend`: the reserved units stay spent.
   */
  private merge(
    req: RateRequest,
    batched: number[],
    v: RateVerdict | undefined,
    reserved: (Allotment | undefined)[],
    spend: boolean,
    status?: RateVerdict["status"],
  ): RateVerdict {
    const outcomes: LimitOutcome[] = [];
    let e = 0;
    req.items.forEach((it, i) => {
      const j = batched.indexOf(i);
      if (j < 0) {
        outcomes.push(
          v?.outcomes[e++] ?? { exceeded: false, remaining: 0, resetMs: 0, retryMs: 0 },
        );
        return;
      }
      outcomes.push(this.outcomeOf(it, reserved[j], it.cost || req.cost));
    });
    const local = spend && (this.unreachable || this.o.storeDown?.() === true);
    return {
      status: status ?? v?.status ?? "ok",
      outcomes,
      blockMs: v?.blockMs ?? 0,
      ...(v?.blockedTag !== undefined && { blockedTag: v.blockedTag }),
      newBlocks: v?.newBlocks ?? [],
      ...(local && { decidedLocally: true }),
    };
  }

  /**
   * A batched limit's outcome, from what the last take left in the store plus
   * what this replica holds (other replicas' units are not known here, so
   * `remaining` can be above the bucket's). Denied: retry after one unit's
   * refill (rate) or at the window's end (quota).
   */
  private outcomeOf(item: LimitItem, a: Allotment | undefined, cost: number): LimitOutcome {
    const held = a ?? this.held.get(keyOf(item));
    const after = held?.after ?? { exceeded: true, remaining: 0, resetMs: 0, retryMs: 0 };
    const remaining = after.remaining + (held?.units ?? 0);
    // Reserved: it could pay (spent if the decision was allowed, else put back).
    if (a !== undefined) return { exceeded: false, remaining, resetMs: after.resetMs, retryMs: 0 };
    return {
      exceeded: true,
      remaining,
      resetMs: after.resetMs,
      retryMs: retryFor(item.limit, cost, after.resetMs),
    };
  }

  private forget(key: string): void {
    if (this.held.delete(key)) this.bytes -= ALLOTMENT_BYTES + stringBytes(key);
  }

  /** Gives back the units of allotments past their flush_interval. */
  private sweep(now: number): void {
    for (const [key, a] of this.held) {
      if (a.pending) continue;
      const flushMs = a.item.limit.batch?.flushMs ?? 0;
      if (now - a.takenAt < flushMs || now < a.emptyUntil) continue;
      this.forget(key);
      this.returnUnits(a);
    }
  }

  private evictOldest(): void {
    for (const [key, a] of this.held) {
      if (a.pending) continue;
      this.forget(key);
      this.evictions++;
      this.returnUnits(a);
      return;
    }
  }

  /** Gives an allotment's units back, once: a failure is not retried (see the file comment). */
  private returnUnits(a: Allotment, units = a.units): void {
    a.units -= Math.min(a.units, units);
    if (units <= 0) return;
    this.inner.giveBack(a.item, units).then(
      () => {
        this.unreachable = false;
      },
      (err: unknown) => {
        if (isStoreUnavailable(err)) this.unreachable = true;
      },
    );
  }

  /** Gives every held unit back (shutdown) and stops the sweep. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    const all = [...this.held.values()];
    this.held.clear();
    this.bytes = 0;
    await Promise.allSettled(
      all.map(async (a) => {
        await a.pending;
        const units = a.units;
        a.units = 0;
        if (units > 0) await this.inner.giveBack(a.item, units);
      }),
    );
  }

  peek(items: LimitItem[]): Promise<LimitOutcome[]> {
    return this.inner.peek(items);
  }
  take(item: LimitItem, want: number) {
    return this.inner.take(item, want);
  }
  giveBack(item: LimitItem, amount: number): Promise<void> {
    return this.inner.giveBack(item, amount);
  }
  adjustCredits(...a: Parameters<RateLimitStore["adjustCredits"]>) {
    return this.inner.adjustCredits(...a);
  }
  forceCharge(...a: Parameters<RateLimitStore["forceCharge"]>) {
    return this.inner.forceCharge(...a);
  }
  listBlocks(limit: number) {
    return this.inner.listBlocks(limit);
  }
  liftBlock(tag: string) {
    return this.inner.liftBlock(tag);
  }
  placeBlock(tag: string, durationMs: number) {
    return this.inner.placeBlock(tag, durationMs);
  }
}

/** A take that failed, with the store's error. */
class TakeFailed {
  constructor(readonly err: unknown) {}
}

/**
 * How long a bucket found short counts as empty: a rate until a take's worth
 * has refilled, a quota until flush_interval has passed (when other replicas'
 * unused units have come back), never longer than flush_interval.
 */
function backoffMs(l: Limit): number {
  const flush = l.batch?.flushMs ?? 0;
  if (l.kind !== "rate" || l.requests === 0) return flush;
  return Math.min(flush, Math.ceil((takeSize(l) * l.periodMs) / l.requests));
}

/** An allotment's key: one per bucket (subject tag and bucket id). */
function keyOf(item: LimitItem): string {
  return `${item.tag}\u0000${item.limit.bucketId}`;
}

/** When `cost` units could be there again: one unit's refill per cost unit, or the window's end. */
function retryFor(l: Limit, cost: number, resetMs: number): number {
  if (cost > l.burst || l.requests === 0) return -1;
  if (l.kind === "rate") return Math.ceil((cost * l.periodMs) / l.requests);
  return resetMs;
}
