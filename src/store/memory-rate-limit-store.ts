import type { Clock } from "../util/clock.js";
import { calendarWindow } from "./calendar-window.js";
import type {
  ActiveBlock,
  LimitOutcome,
  RateLimitStore,
  RateRequest,
  RateVerdict,
} from "./rate-limit-store.js";

interface Entry {
  /** Rate: scaled debt; quota: window id; block: level; counters: count. */
  a: number;
  /** Rate: time of `a`; quota: used. */
  b: number;
  expiresAt: number;
}

/** Most entries before a sweep of expired ones runs on the next write. */
const SWEEP_EVERY = 10_000;

/**
 * The embedded rate-limit store: the same semantics as rate-limit-n.lua (GCRA in
 * scaled integers, calendar quotas, all-or-nothing charging, escalating blocks)
 * over process memory. Every entry has an expiry; expired entries are swept
 * periodically so memory stays proportional to active subjects.
 */
export class MemoryRateLimitStore implements RateLimitStore {
  private readonly map = new Map<string, Entry>();
  private writes = 0;

  constructor(private readonly clock: Clock) {}

  async decide(req: RateRequest): Promise<RateVerdict> {
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
    let denied = false;
    // Each limit's state as it stands, and (when it admits the cost) after the
    // charge: which one is reported depends on the whole decision, below.
    const charged: (LimitOutcome | undefined)[] = [];
    const outcomes: LimitOutcome[] = req.items.map(({ tag, limit: l, cost: own }, i) => {
      const cost = own || req.cost;
      const key = `rl:${tag}:${l.bucketId}`;
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
        const remaining = n > 0 && l.burst > 0 ? Math.floor((cap - d) / p) : 0;
        const resetMs = n > 0 ? ceilDiv(d, n) : 0;
        if (n === 0 || l.burst === 0 || cost > l.burst) {
          o = { exceeded: true, remaining, resetMs, retryMs: -1 };
        } else if (d + cost * p <= cap) {
          const nd = d + cost * p;
          o = { exceeded: false, remaining, resetMs, retryMs: 0 };
          charged[i] = { ...o, remaining: Math.floor((cap - nd) / p), resetMs: ceilDiv(nd, n) };
          writes.push([key, { a: nd, b: now, expiresAt: now + Math.max(1, ceilDiv(nd, n)) }]);
        } else {
          o = { exceeded: true, remaining, resetMs, retryMs: ceilDiv(d + cost * p - cap, n) };
        }
      } else {
        const w = calendarWindow(l.window ?? "day", now);
        const used = e && e.a === w.id ? e.b : 0;
        const resetMs = w.end - now;
        if (used + cost <= l.requests) {
          o = { exceeded: false, remaining: l.requests - used, resetMs, retryMs: 0 };
          charged[i] = { ...o, remaining: l.requests - used - cost };
          writes.push([key, { a: w.id, b: used + cost, expiresAt: w.end }]);
        } else {
          o = {
            exceeded: true,
            remaining: l.requests - used,
            resetMs,
            retryMs: cost <= l.requests ? resetMs : -1,
          };
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
        const dk = `bd:${t}`;
        const d = this.live(dk, now);
        const c = (d?.a ?? 0) + 1;
        this.set(dk, { a: c, b: 0, expiresAt: d?.expiresAt ?? now + b.withinMs });
        if (c >= b.after) {
          const ok = `bo:${t}`;
          const level = (this.live(ok, now)?.a ?? 0) + 1;
          const dur = Math.min(b.maxDurationMs, Math.floor(b.durationMs * b.factor ** (level - 1)));
          this.set(ok, { a: level, b: 0, expiresAt: now + b.forgetAfterMs + dur });
          this.set(`bl:${t}`, { a: level, b: 0, expiresAt: now + dur });
          this.map.delete(dk);
          newBlocks.push({ tag: t, durationMs: dur });
        }
      }
    }
    return { status: denied ? "limited" : "ok", outcomes, blockMs: 0, newBlocks };
  }

  async listBlocks(limit: number): Promise<ActiveBlock[]> {
    const now = this.clock.now();
    const out: ActiveBlock[] = [];
    for (const [k, e] of this.map) {
      if (k.startsWith("bl:") && e.expiresAt > now)
        out.push({ tag: k.slice(3), until: e.expiresAt, level: e.a });
    }
    return out.sort((a, b) => b.until - a.until).slice(0, limit);
  }

  async liftBlock(tag: string): Promise<boolean> {
    const had = this.live(`bl:${tag}`, this.clock.now()) !== undefined;
    this.map.delete(`bl:${tag}`);
    this.map.delete(`bd:${tag}`);
    return had;
  }

  async placeBlock(tag: string, durationMs: number): Promise<number> {
    const now = this.clock.now();
    const e = this.live(`bl:${tag}`, now);
    if (e && e.expiresAt >= now + durationMs) return e.expiresAt;
    this.set(`bl:${tag}`, { a: e?.a ?? 1, b: 0, expiresAt: now + durationMs });
    return now + durationMs;
  }

  /** Entries held (for tests of boundedness). */
  get size(): number {
    return this.map.size;
  }

  private live(key: string, now: number): Entry | undefined {
    const e = this.map.get(key);
    if (e && e.expiresAt <= now) {
      this.map.delete(key);
      return undefined;
    }
    return e;
  }

  private set(key: string, e: Entry): void {
    this.map.set(key, e);
    if (++this.writes % SWEEP_EVERY === 0) {
      const now = this.clock.now();
      for (const [k, v] of this.map) if (v.expiresAt <= now) this.map.delete(k);
    }
  }
}

function ceilDiv(a: number, b: number): number {
  return Math.floor((a + b - 1) / b);
}
