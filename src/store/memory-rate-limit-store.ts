import { hash } from "node:crypto";
import type { CreditPlan } from "../policy/policy.js";
import type {
  ActiveBlock,
  CreditBalance,
  CreditChange,
  ForceChargeRequest,
  ForceChargeVerdict,
  LimitItem,
  LimitOutcome,
  RateLimitStore,
  RateRequest,
  RateVerdict,
  TakeResult,
} from "../ratelimit/rate-limit-store.js";
import type { Clock } from "../util/clock.js";
import {
  EVICT_TO,
  type MemoryBounds,
  type MemoryUsage,
  stringBytes,
} from "../util/memory-usage.js";
import { pickEvictions } from "../util/pick-evictions.js";
import {
  CREDIT_TTL_MS,
  calendarWindow,
  creditPeriod,
  MAX_CREDIT_BALANCE,
  refilledBalance,
} from "./calendar-window.js";
import { type Entry, EntryTable, SLOT_BYTES } from "./entry-table.js";

/** Most entries before a sweep of expired ones runs on the next write. */
const SWEEP_EVERY = 10_000;

/**
 * Estimated heap bytes of one entry besides its key string: its share of the
 * Map's table (24 bytes a slot and its buckets, but V8 doubles the table when
 * fewer than half its used slots are deleted ones, so a churned map holds up
 * to four slots per live key: 112), a free-list place and its four columns
 * (entry-table.ts). Measured from a heap snapshot after the 256-byte-subject
 * flood (test/security): 150 000 entries, a table of 524 288 slots (95 bytes
 * an entry), 31 bytes of columns an entry.
 */
const ENTRY_OVERHEAD = 112 + SLOT_BYTES;

/** Default bounds (the settings' defaults). */
export const RATE_STORE_DEFAULTS: MemoryBounds = {
  maxEntries: 150_000,
  maxBytes: 32 * 1024 * 1024,
};

/**
 * Eviction rank of the classes of state: whatever holds the least is evicted
 * first. A block or an offence level always outranks counters.
 */
const OFFENCE_RANK = 2 ** 60;
const BLOCK_RANK = 2 ** 61;
/** Largest integer a double holds exactly: the cap of a forced debt or count (as in Lua). */
const MAX_EXACT = Number.MAX_SAFE_INTEGER;

/** Every limit's state with the cost charged whatever the limit says (forceCharge). */
interface Forced {
  /** A duplicate report charges nothing: each limit is reported as it stands. */
  duplicate: boolean;
  writes: [string, Entry][];
  outcomes: (LimitOutcome | undefined)[];
}

/**
 * The embedded rate-limit store: the same semantics as rate-limit-n.lua (GCRA in
 * scaled integers, calendar quotas, all-or-nothing charging, escalating blocks)
 * over process memory. Every entry has an expiry; expired entries are swept
 * periodically so memory stays proportional to active subjects.
 *
 * Bounded in entries and estimated bytes (`bounds`; the insurance limiter uses
 * one of these too). A rate entry expires exactly when its debt has drained —
 * when it equals a fresh bucket — so expired entries are always dropped first
 * and cost nothing. Past the bounds with only live state, the store evicts, in
 * one batch down to 90 % of both bounds, the entries that hold the *least*:
 * measured in cost units still charged against the subject (a rate's remaining
 * debt, a quota's used count, a pending-denial count), ties oldest first;
 * offence levels and active blocks go only after every counter, blocks soonest
 * ending first. So an attacker creating distinct subjects can only ever make the
 * store forget state worth no more than what it spent on each of its own
 * entries: to reset a subject that has used U units, it must first hold
 * `maxEntries` entries each worth more than U — `maxEntries` × U requests, all
 * metered. A subject at its limit, or blocked, is the last thing forgotten.
 *
 * Usage reports' idempotency markers (`ur:<id>`, forceCharge) live in the same
 * bounded map, each expiring with its retention. Each holds less than one cost
 * unit (the share of its retention left), so under pressure the oldest markers
 * go first, before any counter holding a unit: forgetting an old report's id
 * risks a double charge only if that report is resent after so long, while
 * forgetting counters would reset limits.
 */
export class MemoryRateLimitStore implements RateLimitStore {
  private readonly map: EntryTable;
  private readonly bounds: MemoryBounds;
  private writes = 0;
  private bytes = 0;
  private evictions = 0;

  /** `bounds` defaults to RATE_STORE_DEFAULTS (150 000 entries, 32 MiB). */
  constructor(
    private readonly clock: Clock,
    bounds: Partial<MemoryBounds> = {},
  ) {
    this.bounds = { ...RATE_STORE_DEFAULTS, ...bounds };
    // A write may pass the bound by one entry before shrink brings it back.
    this.map = new EntryTable(this.bounds.maxEntries + 1);
  }

  async decide(req: RateRequest): Promise<RateVerdict> {
    return this.evaluate(req, req.deny === true);
  }

  /** take-1.lua's semantics: the bucket as it stands, then up to `want` of what it has charged. */
  async take(item: LimitItem, want: number): Promise<TakeResult> {
    if (item.limit.kind === "credits")
      throw new TypeError("a credit balance is not taken in batches");
    const single = { tag: item.tag, limit: item.limit };
    const now = this.evaluate({ items: [single], cost: 1, blockTags: [] }, true).outcomes[0];
    const available = Math.max(0, now?.remaining ?? 0);
    const taken = Math.min(want, available);
    if (taken === 0) {
      return {
        taken,
        outcome: { exceeded: true, remaining: 0, resetMs: now?.resetMs ?? 0, retryMs: 0 },
      };
    }
    const v = this.evaluate(
      { items: [{ ...single, cost: taken }], cost: taken, blockTags: [] },
      false,
    );
    const after = v.outcomes[0] as LimitOutcome;
    return {
      taken,
      outcome: {
        exceeded: taken < want,
        remaining: after.remaining,
        resetMs: after.resetMs,
        retryMs: 0,
      },
    };
  }

  /** refund-n.lua's semantics for one rate or quota bucket. */
  async giveBack(item: LimitItem, amount: number): Promise<void> {
    const l = item.limit;
    if (amount <= 0 || l.kind === "credits") return;
    const now = this.clock.now();
    const key = `rl:${storedTag(item.tag)}:${l.bucketId}`;
    const e = this.live(key, now);
    if (!e) return;
    if (l.kind === "rate") {
      const n = Math.max(1, l.requests);
      const drained = (now - e.b) * n;
      const d = now > e.b ? (drained >= e.a ? 0 : e.a - drained) : e.a;
      const nd = Math.max(0, d - amount * l.periodMs);
      if (nd === 0) this.drop(key);
      else
        this.set(key, {
          a: nd,
          b: now,
          expiresAt: now + Math.max(1, ceilDiv(nd, n)),
          t: l.periodMs / n,
        });
      return;
    }
    // A quota gives back within the window that charged it (an older one is gone).
    if (e.a === calendarWindow(l.window ?? "day", now).id) {
      this.set(key, { ...e, b: Math.max(0, e.b - amount) });
    }
  }

  /** The decision's evaluation, denied whatever the limits say: nothing is written. */
  async peek(items: LimitItem[]): Promise<LimitOutcome[]> {
    return this.evaluate({ items, cost: 1, blockTags: [] }, true).outcomes;
  }

  /**
   * The "force" mode of rate-limit-n.lua: every item charged, never denied, no
   * block checked or placed; the marker `ur:<id>` is written with the charge.
   */
  async forceCharge(req: ForceChargeRequest): Promise<ForceChargeVerdict> {
    const now = this.clock.now();
    const marker = req.once && `ur:${req.once.id}`;
    const duplicate = marker !== undefined && this.live(marker, now) !== undefined;
    const forced: Forced = { duplicate, writes: [], outcomes: [] };
    const v = this.evaluate({ items: req.items, cost: req.cost, blockTags: [] }, true, forced);
    if (!duplicate) for (const [k, e] of forced.writes) this.set(k, e);
    if (marker && req.once && !duplicate) {
      this.set(marker, { a: 0, b: 0, expiresAt: now + req.once.ttlMs, t: req.once.ttlMs });
    }
    return { duplicate, outcomes: v.outcomes.map((o, i) => forced.outcomes[i] ?? o) };
  }

  /**
   * Evaluates every limit and charges all or none. `denyOnly` (peek) denies
   * whatever the limits say; with no blocking in `req` it then writes nothing.
   * `forced`, when given, collects each limit's forced charge (forceCharge).
   */
  private evaluate(req: RateRequest, denyOnly: boolean, forced?: Forced): RateVerdict {
    const now = this.clock.now();
    const tags = req.blocking ? req.blockTags : [];
    let blockMs = 0;
    let blockedTag: string | undefined;
    for (const t of tags) {
      const e = this.live(`bl:${t}`, now);
      if (e && e.expiresAt - now > blockMs) {
        blockMs = e.expiresAt - now;
        blockedTag = t;
      }
    }
    if (blockedTag !== undefined) {
      const outcomes = req.items.map(() => ({
        exceeded: false,
        remaining: 0,
        resetMs: 0,
        retryMs: -1,
      }));
      return { status: "blocked", outcomes, blockMs, blockedTag, newBlocks: [] };
    }
    const writes: [string, Entry][] = [];
    let denied = denyOnly;
    // Each limit's state as it stands, and (when it admits the cost) after the
    // charge: which one is reported depends on the whole decision, below.
    const charged: (LimitOutcome | undefined)[] = [];
    const outcomes: LimitOutcome[] = req.items.map(({ tag, limit: l, cost: own }, i) => {
      const cost = own || req.cost;
      const key = `rl:${storedTag(tag)}:${l.bucketId}`;
      const e = this.live(key, now);
      let o: LimitOutcome;
      if (l.kind === "rate") {
        const n = l.requests;
        const p = l.periodMs;
        let d = 0;
        if (e) {
          const drained = (now - e.b) * n;
          d = now > e.b ? (drained >= e.a ? 0 : e.a - drained) : e.a;
        }
        const cap = l.burst * p;
        // A debt past the burst (a usage report's) reports 0 remaining.
        const remaining = n > 0 && l.burst > 0 ? Math.max(0, Math.floor((cap - d) / p)) : 0;
        const resetMs = n > 0 ? ceilDiv(d, n) : 0;
        if (n === 0 || l.burst === 0 || cost > l.burst) {
          o = { exceeded: true, remaining, resetMs, retryMs: -1 };
        } else if (d + cost * p <= cap) {
          const nd = d + cost * p;
          o = { exceeded: false, remaining, resetMs, retryMs: 0 };
          charged[i] = { ...o, remaining: Math.floor((cap - nd) / p), resetMs: ceilDiv(nd, n) };
          writes.push([
            key,
            { a: nd, b: now, expiresAt: now + Math.max(1, ceilDiv(nd, n)), t: p / n },
          ]);
        } else {
          o = { exceeded: true, remaining, resetMs, retryMs: ceilDiv(d + cost * p - cap, n) };
        }
        if (forced && n > 0 && l.burst > 0) {
          const fd = forced.duplicate ? d : Math.min(d + cost * p, MAX_EXACT);
          const reset = ceilDiv(fd, n);
          // Reported: whether a request of cost 1 is now refused, and for how long.
          const retryMs = Math.max(0, ceilDiv(fd + p - cap, n));
          forced.outcomes[i] = {
            exceeded: retryMs > 0,
            remaining: Math.max(0, Math.floor((cap - fd) / p)),
            resetMs: reset,
            retryMs,
          };
          forced.writes.push([
            key,
            { a: fd, b: now, expiresAt: now + Math.max(1, reset), t: p / n },
          ]);
        }
      } else if (l.kind === "credits" && l.credits) {
        const c = this.credits(key, l.credits, now);
        if (c.balance >= cost) {
          o = { exceeded: false, remaining: c.balance, resetMs: c.resetMs, retryMs: 0 };
          charged[i] = { ...o, remaining: c.balance - cost };
          writes.push([creditKey(key), c.entry(c.balance - cost)]);
        } else {
          o = {
            exceeded: true,
            // A debt (a usage report past the balance) reports 0 remaining.
            remaining: Math.max(0, c.balance),
            resetMs: c.resetMs,
            retryMs: c.retryFor(cost),
          };
        }
        if (forced) {
          // A usage report: the debt stays (the balance may go below zero); a
          // duplicate charges nothing and reports the balance as it stands.
          const fb = forced.duplicate ? c.balance : c.balance - cost;
          forced.outcomes[i] = {
            exceeded: fb < 1,
            remaining: Math.max(0, fb),
            resetMs: c.resetMs,
            retryMs: fb >= 1 ? 0 : c.resetMs > 0 ? c.resetMs : -1,
          };
          forced.writes.push([creditKey(key), c.entry(fb)]);
        }
      } else {
        const w = calendarWindow(l.window ?? "day", now);
        const used = e && e.a === w.id ? e.b : 0;
        const resetMs = w.end - now;
        if (used + cost <= l.requests) {
          o = { exceeded: false, remaining: l.requests - used, resetMs, retryMs: 0 };
          charged[i] = { ...o, remaining: l.requests - used - cost };
          writes.push([key, { a: w.id, b: used + cost, expiresAt: w.end, t: 0 }]);
        } else {
          o = {
            exceeded: true,
            remaining: Math.max(0, l.requests - used),
            resetMs,
            retryMs: cost <= l.requests ? resetMs : -1,
          };
        }
        if (forced) {
          const fu = forced.duplicate ? used : Math.min(used + cost, MAX_EXACT);
          forced.outcomes[i] = {
            exceeded: fu >= l.requests,
            remaining: Math.max(0, l.requests - fu),
            resetMs,
            retryMs: fu >= l.requests ? resetMs : 0,
          };
          forced.writes.push([key, { a: w.id, b: fu, expiresAt: w.end, t: 0 }]);
        }
      }
      if (o.exceeded && l.mode !== "shadow") denied = true;
      return o;
    });
    const newBlocks: { tag: string; durationMs: number }[] = [];
    if (!denied) {
      // Allowed: every limit that admitted the cost is charged and says so.
      for (const [k, e] of writes) this.set(k, e);
      charged.forEach((c, i) => {
        if (c) outcomes[i] = c;
      });
    } else if (req.blocking) {
      const b = req.blocking;
      for (const t of tags) {
        const dk = `bd:${storedTag(t)}`;
        const d = this.live(dk, now);
        const c = (d?.a ?? 0) + 1;
        this.set(dk, { a: c, b: 0, expiresAt: d?.expiresAt ?? now + b.withinMs, t: 0 });
        if (c >= b.after) {
          const ok = `bo:${storedTag(t)}`;
          const level = (this.live(ok, now)?.a ?? 0) + 1;
          const dur = Math.min(b.maxDurationMs, Math.floor(b.durationMs * b.factor ** (level - 1)));
          this.set(ok, { a: level, b: 0, expiresAt: now + b.forgetAfterMs + dur, t: 0 });
          this.set(`bl:${t}`, { a: level, b: 0, expiresAt: now + dur, t: 0 });
          this.drop(dk);
          newBlocks.push({ tag: t, durationMs: dur });
        }
      }
    }
    return { status: denied ? "limited" : "ok", outcomes, blockMs: 0, newBlocks };
  }

  async adjustCredits(item: LimitItem, change: CreditChange): Promise<CreditBalance> {
    const plan = item.limit.credits;
    if (!plan) throw new TypeError("adjustCredits needs a credits item");
    const now = this.clock.now();
    const key = `rl:${storedTag(item.tag)}:${item.limit.bucketId}`;
    const c = this.credits(key, plan, now);
    const balance =
      change.kind === "set"
        ? change.amount
        : Math.min(MAX_CREDIT_BALANCE, c.balance + change.amount);
    this.set(creditKey(key), c.entry(balance));
    return { balance, resetMs: c.resetMs };
  }

  /**
   * A credit balance as it stands at `now`: the stored one refilled for the
   * current period (refill-balance arithmetic shared with the scripts), or the
   * plan's amount if none is stored.
   */
  private credits(key: string, plan: CreditPlan, now: number) {
    const period = creditPeriod(plan.refill, plan.refillDay, now);
    const cap = plan.mode === "add" ? plan.cap : -1;
    const e = this.live(creditKey(key), now);
    const balance = e
      ? refilledBalance(plan.amount, cap, plan.refill, e.a, e.b, period.id)
      : plan.amount;
    const resetMs = period.next === undefined ? 0 : period.next - now;
    return {
      balance,
      resetMs,
      /** ms until a cost can fit: the next refill if it brings enough, else -1 (never). */
      retryFor: (cost: number) =>
        period.next !== undefined &&
        refilledBalance(plan.amount, cap, plan.refill, period.id, balance, period.id + 1) >= cost
          ? resetMs
          : -1,
      entry: (b: number): Entry => ({ a: period.id, b, expiresAt: now + CREDIT_TTL_MS, t: 0 }),
    };
  }

  async listBlocks(limit: number): Promise<ActiveBlock[]> {
    const now = this.clock.now();
    const out: ActiveBlock[] = [];
    this.map.forEach((k, a, _b, expiresAt) => {
      if (k.startsWith("bl:") && expiresAt > now)
        out.push({ tag: k.slice(3), until: expiresAt, level: a });
    });
    return out.sort((a, b) => b.until - a.until).slice(0, limit);
  }

  async liftBlock(tag: string): Promise<boolean> {
    const had = this.live(`bl:${tag}`, this.clock.now()) !== undefined;
    this.drop(`bl:${tag}`);
    this.drop(`bd:${storedTag(tag)}`);
    return had;
  }

  async placeBlock(tag: string, durationMs: number): Promise<number> {
    const now = this.clock.now();
    const e = this.live(`bl:${tag}`, now);
    if (e && e.expiresAt >= now + durationMs) return e.expiresAt;
    this.set(`bl:${tag}`, { a: e?.a ?? 1, b: 0, expiresAt: now + durationMs, t: 0 });
    return now + durationMs;
  }

  /** Entries held (for tests of boundedness). */
  get size(): number {
    return this.map.size;
  }

  /** Entries, estimated bytes and evictions for space, for the memory gauges. */
  usage(): MemoryUsage {
    return { entries: this.map.size, bytes: this.bytes, evictions: this.evictions };
  }

  private live(key: string, now: number): Entry | undefined {
    const e = this.map.get(key);
    if (e && e.expiresAt <= now) {
      this.drop(key);
      return undefined;
    }
    return e;
  }

  private set(key: string, e: Entry): void {
    if (this.map.set(key, e)) this.bytes += ENTRY_OVERHEAD + stringBytes(key);
    const { maxEntries, maxBytes } = this.bounds;
    if (this.map.size > maxEntries || this.bytes > maxBytes) this.shrink();
    else if (++this.writes % SWEEP_EVERY === 0) this.sweep(this.clock.now());
  }

  private drop(key: string): boolean {
    if (!this.map.delete(key)) return false;
    this.bytes -= ENTRY_OVERHEAD + stringBytes(key);
    return true;
  }

  private sweep(now: number): void {
    this.map.deleteExpired(now, (k) => {
      this.bytes -= ENTRY_OVERHEAD + stringBytes(k);
    });
  }

  /**
   * Brings the store back to EVICT_TO of both bounds: expired entries first
   * (they equal fresh state), then the live entries holding the least (see the
   * class comment), in one batch so the cost is amortised over many writes.
   */
  private shrink(): void {
    const now = this.clock.now();
    this.sweep(now);
    const keepEntries = Math.floor(this.bounds.maxEntries * EVICT_TO);
    const keepBytes = Math.floor(this.bounds.maxBytes * EVICT_TO);
    if (this.map.size <= keepEntries && this.bytes <= keepBytes) return;
    const values = new Float64Array(this.map.size);
    const sizes = new Float64Array(this.map.size);
    let i = 0;
    this.map.forEach((k, a, b, expiresAt, t) => {
      values[i] = held(k, a, b, expiresAt, t, now);
      sizes[i++] = ENTRY_OVERHEAD + stringBytes(k);
    });
    const evict = pickEvictions(values, sizes, keepEntries, keepBytes);
    // Deleting the entry being visited leaves a Map's iteration order intact.
    i = 0;
    for (const k of this.map.keys()) {
      if (evict[i++] === 1 && this.drop(k)) this.evictions++;
    }
  }
}

/**
 * What an entry holds against its subject, for eviction order: cost units still
 * charged for counters (rate debt left, quota used, pending denials), above
 * every counter the offence levels, above those the active blocks by time left.
 */
function held(
  key: string,
  a: number,
  b: number,
  expiresAt: number,
  t: number,
  now: number,
): number {
  switch (key.slice(0, 3)) {
    case "bl:": // an active block
      return BLOCK_RANK + (expiresAt - now);
    case "bo:": // an offence level
      return OFFENCE_RANK + a;
    case "bd:": // denials toward a block
      return a;
    case "cr:": // a credit balance: forgetting it would refill it, so it goes with the offence levels
      return OFFENCE_RANK;
    case "ur:": // a usage report's idempotency marker: the share of its retention left (≤ 1)
      return (expiresAt - now) / Math.max(1, t);
    default: // "rl:" a rate's debt left, or a quota's used count
      return t > 0 ? (expiresAt - now) / t : b;
  }
}

/** Tags longer than this are keyed by their digest (storedTag). */
const LONG_TAG = 64;

/**
 * A subject tag as this store's counter keys hold it: as is when short, else
 * "#" and its SHA-256 (base64url, 43 characters). A caller-chosen subject of
 * up to 256 bytes would otherwise be copied into the key of each of its limits
 * and its pending denials: under a flood of distinct long subjects those
 * copies were most of the store's heap (measured: 27 of its 40 MB), and the
 * byte bound then held half as many subjects. "#" starts no real tag (a kind
 * letter and ":"), and two subjects share a key only if their SHA-256 digests
 * collide. Block keys (`bl:`) keep the whole tag: listing blocks reads it back.
 */
export function storedTag(tag: string): string {
  return tag.length <= LONG_TAG ? tag : `#${hash("sha256", tag, "base64url")}`;
}

/** A credit balance's entry key: its own prefix, so eviction ranks it apart from counters. */
function creditKey(bucketKey: string): string {
  return `cr:${bucketKey.slice(3)}`;
}

function ceilDiv(a: number, b: number): number {
  return Math.floor((a + b - 1) / b);
}
