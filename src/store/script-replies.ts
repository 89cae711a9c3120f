/**
 * The replies of Tollgate's Lua scripts, named. Each script returns a flat
 * Redis array or an integer code (see the header of its file in `lua/`);
 * this module is the one place that knows the layout, so stores read
 * `reply.status` or `CLAIM.taken`, never `r[2]` or a bare 0.
 */

/** `rate-limit-n.lua` status codes. */
export const RATE_STATUS = { ok: 0, limited: 1, blocked: 2 } as const;

/** Fields before the new-block pairs in a `rate-limit-n.lua` reply: status, block_ms, blocked subject, n_new. */
const RATE_HEADER = 4;
/** Values per new block: subject index, block ms. */
const NEW_BLOCK_WIDTH = 2;
/** Values per limit: exceeded, remaining, reset_ms, retry_ms. */
const LIMIT_WIDTH = 4;

/** One limit's state in a `rate-limit-n.lua` reply. */
export interface LimitReply {
  exceeded: boolean;
  remaining: number;
  resetMs: number;
  /** -1: never (the cost can never fit). */
  retryMs: number;
}

/** A decoded `rate-limit-n.lua` reply. */
export interface RateLimitReply {
  status: "ok" | "limited" | "blocked";
  /** Time left of the longest active block, ms (when blocked). */
  blockMs: number;
  /** 1-based index of the blocking subject that is blocked, 0 for none. */
  blockedSubject: number;
  /** Blocks this decision placed: 1-based subject index and duration. */
  newBlocks: { subject: number; durationMs: number }[];
  /** One entry per limit, in the order passed. */
  limits: LimitReply[];
}

/** Decodes a `rate-limit-n.lua` reply of `limitCount` limits. */
export function decodeRateLimitReply(r: readonly unknown[], limitCount: number): RateLimitReply {
  const num = (i: number) => Number(r[i]);
  const code = num(0);
  const status =
    code === RATE_STATUS.blocked ? "blocked" : code === RATE_STATUS.limited ? "limited" : "ok";
  const newCount = num(3);
  const newBlocks: RateLimitReply["newBlocks"] = [];
  for (let i = 0; i < newCount; i++) {
    const at = RATE_HEADER + i * NEW_BLOCK_WIDTH;
    newBlocks.push({ subject: num(at), durationMs: num(at + 1) });
  }
  const limits: LimitReply[] = [];
  const first = RATE_HEADER + newCount * NEW_BLOCK_WIDTH;
  for (let i = 0; i < limitCount; i++) {
    const at = first + i * LIMIT_WIDTH;
    limits.push({
      exceeded: num(at) === 1,
      remaining: num(at + 1),
      resetMs: num(at + 2),
      retryMs: num(at + 3),
    });
  }
  return { status, blockMs: num(1), blockedSubject: num(2), newBlocks, limits };
}

/** One bucket after a `refund-n.lua` refund; `resetMs` absent when a quota's key is gone. */
export interface RefundReply {
  remaining: number;
  resetMs?: number;
}

/** Decodes a `refund-n.lua` reply of `count` buckets (pairs: remaining, reset_ms or -1). */
export function decodeRefundReply(r: readonly unknown[], count: number): RefundReply[] {
  return Array.from({ length: count }, (_, i) => {
    const reset = Number(r[2 * i + 1]);
    return { remaining: Number(r[2 * i]), ...(reset >= 0 && { resetMs: reset }) };
  });
}

/** Decodes a `credits-adjust-1.lua` reply: `{ balance, ms until the next refill (0: none) }`. */
export function decodeCreditsAdjustReply(r: readonly unknown[]): {
  balance: number;
  resetMs: number;
} {
  return { balance: Number(r[0]), resetMs: Number(r[1]) };
}

/** A decoded `place-block-n.lua` reply. */
export interface PlaceBlockReply {
  /** Time left of the block after the call, ms. */
  remainingMs: number;
  /** Its offence level (kept from an active block). */
  level: number;
  /** True if this call set or extended the block; false if a longer one stood. */
  placed: boolean;
  /** Its end in Redis time, epoch ms (the block index's score). */
  endsAt: number;
}

/** Decodes a `place-block-n.lua` reply. */
export function decodePlaceBlockReply(r: readonly unknown[]): PlaceBlockReply {
  return {
    remainingMs: Number(r[0]),
    level: Number(r[1]),
    placed: Number(r[2]) === 1,
    endsAt: Number(r[3]),
  };
}

/** `claim-digest-1.lua` codes. */
export const CLAIM = { taken: 0, made: 1, alreadyOurs: 2 } as const;

/** `replace-if-version-1.lua` codes. */
export const REPLACE = { conflict: 0, replaced: 1 } as const;

/** What `record-event-3.lua` returns for an id it had seen (no entry written). */
export const EVENT_DUPLICATE = "";

/** Decodes a `detect-window-2.lua` reply: `{ count, fired }`. */
export function decodeWindowReply(r: readonly unknown[]): { count: number; fired: boolean } {
  return { count: Number(r[0]), fired: Number(r[1]) === 1 };
}

/** Decodes a `detect-spike-2.lua` reply: `{ current, baseline (× 1000 on the wire), fired }`. */
export function decodeSpikeReply(r: readonly unknown[]): {
  current: number;
  baseline: number;
  fired: boolean;
} {
  return { current: Number(r[0]), baseline: Number(r[1]) / 1000, fired: Number(r[2]) === 1 };
}
