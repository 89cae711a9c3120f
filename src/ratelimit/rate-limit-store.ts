import type { Blocking, Limit } from "../policy/policy.js";

/** One limit to evaluate, with the subject tag its bucket belongs to. */
export interface LimitItem {
  /** Subject tag, e.g. `k:key_abc`, `i:10.0.0.1`; limits with one tag share a Cluster slot. */
  tag: string;
  limit: Limit;
  /** This limit's cost, when it differs from the request's (Envoy per-descriptor hits). */
  cost?: number;
}

/** A decision request. */
export interface RateRequest {
  items: LimitItem[];
  cost: number;
  /** Subject tags that can be blocked (each checked, and charged a denial on denial). */
  blockTags: string[];
  blocking?: Blocking;
  /**
   * Denied whatever the limits say (a batched limit denied it in memory):
   * nothing is charged, every limit reports what it has now, a block still
   * answers "blocked", and a denial is counted for the blocking subjects.
   */
  deny?: boolean;
}

/**
 * One limit's state after the decision. For a `credits` item: `remaining` is
 * the balance (after this request's cost if allowed), `resetMs` the time to
 * the next refill (0: the plan never refills), `retryMs` that time if the
 * refill lets the cost fit, else -1. A denied decision charges nothing, so
 * then every limit — the denying ones and the others — describes its bucket
 * as it stands, without this request's cost.
 */
export interface LimitOutcome {
  exceeded: boolean;
  /** Cost units still available now (after this request's charge only if it was allowed). */
  remaining: number;
  /** ms until the bucket is fully reset (rate) or the window ends (quota). */
  resetMs: number;
  /** ms until this cost could succeed; -1 never (cost above the limit); 0 when allowed. */
  retryMs: number;
}

/** The store's verdict. */
export interface RateVerdict {
  status: "ok" | "limited" | "blocked";
  /** Same order as the request's items. */
  outcomes: LimitOutcome[];
  /** When blocked: ms left and which tag. */
  blockMs: number;
  blockedTag?: string;
  /** Blocks placed by this decision. */
  newBlocks: { tag: string; durationMs: number }[];
  /** True if decided in memory while the store is unreachable (batched limits). */
  decidedLocally?: boolean;
}

/** What a take of a batched limit's allotment got. */
export interface TakeResult {
  /** Cost units taken (charged to the bucket): 0 … the units asked for. */
  taken: number;
  /** The bucket after the take (`exceeded`: fewer were taken than asked for). */
  outcome: LimitOutcome;
}

/** A change of a credit balance: set it, or add to it (a top-up). */
export interface CreditChange {
  kind: "set" | "add";
  /** The new balance (set) or what is added (add); 0..INPUT_BOUNDS.maxCredits. */
  amount: number;
}

/** A credit balance after a change. */
export interface CreditBalance {
  balance: number;
  /** ms until the next refill; 0 for a plan without refill. */
  resetMs: number;
}

/**
 * A usage report (ReportUsage, Envoy `charge: after_response`): costs charged
 * after the response, to every item, whatever its limit says.
 */
export interface ForceChargeRequest {
  items: LimitItem[];
  /** Default cost of an item without its own. */
  cost: number;
  /**
   * Idempotency: a report whose id was charged within `ttlMs` charges nothing
   * again. The marker is written in the same atomic step as the charge (on
   * Cluster one marker per slot, so a retry after a partial failure charges
   * only the slots not charged yet). Undefined: no idempotency (Envoy).
   */
  once?: { id: string; ttlMs: number };
}

/** What a forced charge did. */
export interface ForceChargeVerdict {
  /** True if the report's id had been charged before: nothing was charged now. */
  duplicate: boolean;
  /**
   * Same order as the items: each bucket after the charge (as it stands for a
   * duplicate). `remaining` may be negative (a debt past the limit);
   * `exceeded` says this cost did not fit (the charge went into debt);
   * `retryMs` is not meaningful (0 or the evaluation's).
   */
  outcomes: LimitOutcome[];
}

/** An active block. */
export interface ActiveBlock {
  tag: string;
  /** Epoch ms when it ends. */
  until: number;
  /** Repeat-offence level (1 for a first block). */
  level: number;
}

/**
 * Rate-limit state. `decide` evaluates every limit and charges all or none,
 * with the store's own clock (Redis TIME) so replicas agree.
 */
export interface RateLimitStore {
  decide(request: RateRequest): Promise<RateVerdict>;
  /**
   * Each limit's bucket as it stands (same order as `items`), read-only: it
   * charges nothing, counts no denial and checks no block. `remaining` and
   * `resetMs` are what a decision would report without its own charge;
   * `exceeded` says a request of cost 1 (or the item's cost) would not fit
   * now. One store round trip per subject tag at most (one in all off Cluster).
   */
  peek(items: LimitItem[]): Promise<LimitOutcome[]>;
  /**
   * Sets or tops up the credit balance of a `credits` item (item.limit.credits
   * is its plan) in one atomic step: the lazy refill of the current period
   * first (so a refill due is neither lost nor applied twice), then the
   * change. A top-up stops at 2^52. Resolves to the balance after it.
   */
  adjustCredits(item: LimitItem, change: CreditChange): Promise<CreditBalance>;
  /**
   * Charges every item its cost and never denies (a usage report): checks no
   * block, places none, counts no denial; a bucket may go past its limit, so
   * the next decision is denied until the debt drains or the window ends. A
   * limit of 0 (or burst 0) is not charged. Atomic per store call (on Cluster
   * per subject tag), with the idempotency marker of `once` in the same step.
   */
  forceCharge(request: ForceChargeRequest): Promise<ForceChargeVerdict>;
  /**
   * Takes up to `want` cost units from one rate or quota bucket in one atomic
   * step, charged as that many decisions would charge it: the allotment a
   * `sync: batched` limit then decides from in memory. Checks no block and
   * counts no denial.
   */
  take(item: LimitItem, want: number): Promise<TakeResult>;
  /** Gives `amount` taken units back to a rate or quota bucket (never past a fresh bucket). */
  giveBack(item: LimitItem, amount: number): Promise<void>;
  /** Active blocks, soonest-ending last, at most `limit`. */
  listBlocks(limit: number): Promise<ActiveBlock[]>;
  /** Lifts a block (and forgets pending denials). True if one was active. */
  liftBlock(tag: string): Promise<boolean>;
  /**
   * Blocks a subject for `durationMs` from now (a detection rule's action), in
   * one atomic step with the block listing. An active block keeps its offence
   * level and ends at the later of its end and the new one. Resolves to the
   * block's end (epoch ms).
   */
  placeBlock(tag: string, durationMs: number): Promise<number>;
}
