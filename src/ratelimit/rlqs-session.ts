/**
 * One Envoy's RLQS stream (rate_limit_quota filter), per bucket: every usage
 * report answers an assignment of units taken from the store bucket the
 * policy's `rlqs` entry names (`take`), after giving back the units of
 * earlier assignments Envoy can no longer use (`giveBack`).
 *
 * Why Envoy cannot admit more than was taken. Each assignment is a token
 * bucket of `max_tokens` = the units taken, which Envoy's filter starts full.
 * Envoy's token bucket refills continuously at tokens_per_fill per
 * fill_interval (in whole seconds), so tokens_per_fill = max_tokens and
 * fill_interval = the TTL would admit up to twice the units within one TTL;
 * the refill is therefore 1 token per REFILL_INTERVAL_S (a day): what one
 * assignment admits is its max_tokens, plus at most one token a day while
 * Envoy carries one bucket over. Envoy carries its token bucket over (keeps
 * its tokens, extends the TTL) when the new assignment's bucket equals the
 * active one, and replaces it, full, otherwise. Either way the live bucket
 * never holds more than the latest assignment's max_tokens, so the ledger
 * keeps that many units charged (`reserve`) and gives back only what exceeds
 * it: units of replaced buckets that Envoy's reports show unused. A report's
 * `num_requests_allowed` counts requests since the previous report, which may
 * include late ones of the previous bucket (admitted before the new
 * assignment arrived): they are covered by that reserve, never refunded.
 *
 * Accounting is under-admission only: `held` (units charged for this Envoy
 * and not reported used) never goes below 0 (requests Envoy admitted on its
 * own, e.g. by its no_assignment_behavior, were charged by no one and are not
 * charged later either), and at the stream's end only `held − reserve` goes
 * back: the live assignment may still be used until its TTL, and those
 * requests, reported on Envoy's next stream, are not charged again there.
 * No unit is both given back and used, and none is given back twice.
 */
import type { RlqsMatch } from "../policy/rlqs-rules.js";
import { isStoreUnavailable } from "../store/store-errors.js";
import type { LimitItem, RateLimitStore } from "./rate-limit-store.js";

/** Envoy's token bucket refill of an assignment: 1 token per this many seconds. */
export const REFILL_INTERVAL_S = 86_400;

/** TTL of a fail-open ALLOW_ALL (store unreachable): short, so Envoy asks again soon. */
export const FAIL_OPEN_TTL_MS = 1000;

/** What to tell Envoy about one bucket. */
export type RlqsAction =
  | { kind: "abandon" }
  /** A token bucket of `tokens` (the units taken), standing `ttlMs`. */
  | { kind: "tokens"; tokens: number; ttlMs: number }
  /** DENY_ALL: the limit is reached (or the store is away and the fail mode is closed). */
  | { kind: "deny"; ttlMs: number }
  /** ALLOW_ALL: the store is away and the fail mode is open. */
  | { kind: "allow"; ttlMs: number };

interface Ledger {
  item: LimitItem;
  /** Units charged for this Envoy that its reports have not shown used. */
  held: number;
  /** max_tokens of the latest token bucket sent (0 after a blanket rule). */
  reserve: number;
}

/** Options of RlqsSession. */
export interface RlqsSessionOptions {
  store: RateLimitStore;
  /** The fail mode when the store is unreachable (the policy's default, else the setting). */
  failMode: () => "open" | "closed";
}

/** The buckets of one stream (one Envoy). Reports are handled one at a time. */
export class RlqsSession {
  private readonly ledgers = new Map<string, Ledger>();

  constructor(private readonly o: RlqsSessionOptions) {}

  /** Buckets this stream holds units of. */
  get size(): number {
    return this.ledgers.size;
  }

  /** True if this stream holds a ledger for the bucket id `key`. */
  has(key: string): boolean {
    return this.ledgers.has(key);
  }

  /**
   * One bucket's report: `allowed` requests since its previous report.
   * `key` identifies the bucket id on this stream (canonical), `match` is its
   * policy entry (undefined: unknown, abandoned). Throws only if the store
   * fails other than by being unreachable.
   */
  async report(key: string, match: RlqsMatch | undefined, allowed: number): Promise<RlqsAction> {
    if (!match) return { kind: "abandon" };
    const { bucket } = match;
    let l = this.ledgers.get(key);
    if (!l || l.item.limit.bucketId !== bucket.limit.bucketId || l.item.tag !== match.tag) {
      // A new bucket, or a reload changed its limit: the old units stay charged.
      l = { item: { tag: match.tag, limit: bucket.limit }, held: 0, reserve: 0 };
      this.ledgers.set(key, l);
    }
    l.held = Math.max(0, l.held - allowed);
    try {
      const back = l.held - Math.min(l.held, l.reserve);
      if (back > 0) {
        // Off the ledger before the call: a give-back that times out may
        // still have landed, and retrying it would give the units back twice.
        l.held -= back;
        await this.o.store.giveBack(l.item, back);
      }
      const { taken } = await this.o.store.take(l.item, bucket.unitsPerAssignment);
      l.held += taken;
      l.reserve = taken;
      return taken > 0
        ? { kind: "tokens", tokens: taken, ttlMs: bucket.ttlMs }
        : { kind: "deny", ttlMs: bucket.ttlMs };
    } catch (err) {
      if (!isStoreUnavailable(err)) throw err;
      // Envoy keeps admitting from the live bucket until the blanket rule lands.
      return this.o.failMode() === "open"
        ? { kind: "allow", ttlMs: FAIL_OPEN_TTL_MS }
        : { kind: "deny", ttlMs: bucket.ttlMs };
    }
  }

  /**
   * The stream ended: gives back the units of replaced assignments that no
   * report showed used; the live assignment's stay charged (see the module
   * comment). Best effort: a store away keeps them charged (under-admission).
   */
  async close(): Promise<void> {
    const all = [...this.ledgers.values()];
    this.ledgers.clear();
    await Promise.all(
      all.map(async (l) => {
        const back = l.held - Math.min(l.held, l.reserve);
        if (back > 0) await this.o.store.giveBack(l.item, back).catch(() => undefined);
      }),
    );
  }
}
