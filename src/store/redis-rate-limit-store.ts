import type { Blocking } from "../policy/policy.js";
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
import { SCRIPTS } from "./lua-scripts.js";
import { creditArgs, limitArgs, WINDOW_CODE } from "./rate-limit-args.js";
import type { RedisClient } from "./redis-client.js";
import type { KeyNames } from "./redis-keys.js";
import {
  decodeCreditsAdjustReply,
  decodePlaceBlockReply,
  decodeRateLimitReply,
  decodeRefundReply,
  RATE_STATUS,
} from "./script-replies.js";
import { runScript } from "./script-runner.js";

const NO_BLOCKING = [1, 1000, 1000, 1, 1000, 60_000];

/**
 * Rate limits on Redis. On standalone Redis (and Sentinel) a decision is one
 * EVALSHA of `rate-limit-n.lua` over every bucket: one round trip, all or
 * nothing. On Cluster, buckets are grouped by subject tag (one hash slot each)
 * and the groups run one after another; when a later group denies, the earlier
 * groups' charges are refunded with `refund-n.lua`. A denied decision reports
 * every limit as it stands without the request, as on standalone: refunded
 * buckets as the refund left them, and the groups not reached yet evaluated
 * without charging. A decision touching k subjects therefore costs k round
 * trips on Cluster when allowed; a denied one adds a refund per slot already
 * charged and an uncharged call per other slot not reached yet or blocking.
 */
export class RedisRateLimitStore implements RateLimitStore {
  private readonly cluster: boolean;

  constructor(
    private readonly redis: RedisClient,
    private readonly names: KeyNames,
  ) {
    this.cluster = redis.isCluster;
  }

  async decide(req: RateRequest): Promise<RateVerdict> {
    if (!this.cluster) {
      const v = await this.run(req.items, req.blockTags, req.cost, req.blocking, req.deny);
      await this.indexBlocks(v.newBlocks);
      return v;
    }
    const order: string[] = [];
    for (const t of [...req.blockTags, ...req.items.map((i) => i.tag)])
      if (!order.includes(t)) order.push(t);
    const outcomes: LimitOutcome[] = req.items.map(() => ({
      exceeded: false,
      remaining: -1,
      resetMs: 0,
      retryMs: 0,
    }));
    const indexesOf = (tag: string) => req.items.flatMap((it, i) => (it.tag === tag ? [i] : []));
    const itemsAt = (idx: number[]) => idx.map((i) => req.items[i] as LimitItem);
    /** Indexes of the items charged so far (refunded if a later group denies). */
    const charged: number[] = [];
    for (const [g, tag] of order.entries()) {
      const idx = indexesOf(tag);
      const v = await this.run(
        itemsAt(idx),
        req.blockTags.includes(tag) ? [tag] : [],
        req.cost,
        req.blocking,
        req.deny,
      );
      idx.forEach((i, j) => {
        outcomes[i] = v.outcomes[j] as LimitOutcome;
      });
      if (v.status !== "ok") {
        // Nothing of a denied decision stays charged, and every limit reports
        // what it has now: a refunded bucket as the refund left it.
        const after = await this.refund(itemsAt(charged), req.cost);
        charged.forEach((i, j) => {
          outcomes[i] = { ...(outcomes[i] as LimitOutcome), ...after[j] };
        });
        const newBlocks = [...v.newBlocks];
        if (v.status === "limited") {
          // Standalone counts a denial for every blocking subject and reports
          // every limit in one script; here the other subjects live in other
          // slots: one uncharged ("deny") call each, for the groups not reached
          // yet and for blocking subjects.
          for (const [h, other] of order.entries()) {
            const rest = h > g ? indexesOf(other) : [];
            const counts = req.blocking !== undefined && req.blockTags.includes(other);
            if (other === tag || (rest.length === 0 && !counts)) continue;
            const d = await this.run(
              itemsAt(rest),
              counts ? [other] : [],
              req.cost,
              req.blocking,
              true,
            );
            // A blocked subject's script stops before its limits: nothing to report.
            if (d.status !== "blocked") {
              rest.forEach((i, j) => {
                outcomes[i] = d.outcomes[j] as LimitOutcome;
              });
            }
            newBlocks.push(...d.newBlocks);
          }
        }
        await this.indexBlocks(newBlocks);
        return { ...v, outcomes, newBlocks };
      }
      idx.forEach((i, j) => {
        if (!v.outcomes[j]?.exceeded) charged.push(i);
      });
    }
    return { status: "ok", outcomes, blockMs: 0, newBlocks: [] };
  }

  /**
   * One uncharged ("deny") call of rate-limit-n.lua with no blocking subject:
   * the script then writes nothing. Off Cluster one call for every item; on
   * Cluster one per subject tag (one hash slot each).
   */
  async peek(items: LimitItem[]): Promise<LimitOutcome[]> {
    if (items.length === 0) return [];
    if (!this.cluster) return (await this.run(items, [], 1, undefined, true)).outcomes;
    const out: LimitOutcome[] = [];
    for (const tag of new Set(items.map((i) => i.tag))) {
      const idx = items.flatMap((it, i) => (it.tag === tag ? [i] : []));
      const v = await this.run(
        idx.map((i) => items[i] as LimitItem),
        [],
        1,
        undefined,
        true,
      );
      idx.forEach((i, j) => {
        out[i] = v.outcomes[j] as LimitOutcome;
      });
    }
    return out;
  }

  /** One `take-1.lua` call: up to `want` units of the item's bucket (one key, one slot). */
  async take(item: LimitItem, want: number): Promise<TakeResult> {
    const l = item.limit;
    if (l.kind === "credits") throw new TypeError("a credit balance is not taken in batches");
    const r = await runScript<number[]>(
      this.redis,
      SCRIPTS.take,
      [this.names.bucket(item.tag, l.bucketId)],
      [
        l.kind === "rate" ? 1 : 2,
        l.requests,
        l.kind === "rate" ? l.periodMs : WINDOW_CODE[l.window ?? "day"],
        l.burst,
        want,
      ],
    );
    const taken = Number(r[0]);
    return {
      taken,
      outcome: {
        exceeded: taken < want,
        remaining: Number(r[1]),
        resetMs: Number(r[2]),
        retryMs: 0,
      },
    };
  }

  /** One `refund-n.lua` call over the item's bucket. */
  async giveBack(item: LimitItem, amount: number): Promise<void> {
    if (amount > 0) await this.refund([{ ...item, cost: amount }], amount);
  }

  /** One `credits-adjust-1.lua` call, in the slot of the key's other buckets. */
  async adjustCredits(item: LimitItem, change: CreditChange): Promise<CreditBalance> {
    const plan = item.limit.credits;
    if (!plan) throw new TypeError("adjustCredits needs a credits item");
    const r = await runScript<number[]>(
      this.redis,
      SCRIPTS.creditsAdjust,
      [this.names.bucket(item.tag, item.limit.bucketId)],
      [...creditArgs(plan), change.kind, change.amount],
    );
    return decodeCreditsAdjustReply(r);
  }

  /**
   * One forced ("force") call of rate-limit-n.lua per subject tag (one in all
   * off Cluster, where the first tag names the marker). Each call carries its
   * own idempotency marker in its slot, written with its charge: after a
   * partial failure on Cluster a retry with the same id finds the charged
   * slots' markers and charges only the others, so nothing is charged twice.
   * A report charging no limit still writes its marker (slot of the tag "-").
   */
  async forceCharge(req: ForceChargeRequest): Promise<ForceChargeVerdict> {
    const groups = new Map<string, number[]>();
    req.items.forEach((it, i) => {
      const tag = this.cluster ? it.tag : (req.items[0] as LimitItem).tag;
      groups.set(tag, [...(groups.get(tag) ?? []), i]);
    });
    if (groups.size === 0) {
      if (!req.once) return { duplicate: false, outcomes: [] };
      groups.set("-", []);
    }
    const outcomes: LimitOutcome[] = [];
    let duplicate = true;
    for (const [tag, idx] of groups) {
      const v = await this.runForce(
        idx.map((i) => req.items[i] as LimitItem),
        req.cost,
        req.once && { key: this.names.reportMarker(tag, req.once.id), ttlMs: req.once.ttlMs },
      );
      if (!v.duplicate) duplicate = false;
      idx.forEach((i, j) => {
        outcomes[i] = v.outcomes[j] as LimitOutcome;
      });
    }
    return { duplicate: req.once !== undefined && duplicate, outcomes };
  }

  async listBlocks(limit: number): Promise<ActiveBlock[]> {
    // Redis time, not this host's: replicas with skewed clocks must neither
    // drop each other's active blocks nor report different end times.
    const now = await this.redisNow();
    const index = this.names.blockIndex();
    await this.redis.zremrangebyscore(index, "-inf", now);
    const tags = await this.redis.zrangebyscore(index, now, "+inf", "LIMIT", 0, limit);
    const found = await Promise.all(
      tags.map(async (tag) => {
        const [ttl, level] = await Promise.all([
          this.redis.pttl(this.names.block(tag)),
          this.redis.get(this.names.block(tag)),
        ]);
        return ttl > 0 ? { tag, until: now + ttl, level: Number(level ?? 1) } : undefined;
      }),
    );
    return found.filter((b): b is ActiveBlock => b !== undefined).sort((a, b) => b.until - a.until);
  }

  async liftBlock(tag: string): Promise<boolean> {
    const n = await this.redis.del(this.names.block(tag));
    await this.redis.del(this.names.denials(tag));
    await this.redis.zrem(this.names.blockIndex(), tag);
    return n > 0;
  }

  /**
   * One script call (`place-block-n.lua`): an active block keeps its offence
   * level and the later end. On standalone and Sentinel the block index is
   * updated in the same step; on Cluster it lives in another slot, so it is
   * updated right after with ZADD GT, which never moves an entry earlier.
   */
  async placeBlock(tag: string, durationMs: number): Promise<number> {
    const block = this.names.block(tag);
    const index = this.names.blockIndex();
    const keys = this.cluster ? [block] : [block, index];
    const r = decodePlaceBlockReply(
      await runScript<unknown[]>(this.redis, SCRIPTS.placeBlock, keys, [durationMs, tag]),
    );
    if (this.cluster) {
      await this.redis.zadd(index, "GT", r.endsAt, tag);
      if ((await this.redis.pttl(index)) < r.remainingMs) {
        await this.redis.pexpire(index, r.remainingMs);
      }
    }
    return Date.now() + r.remainingMs;
  }

  private async run(
    items: LimitItem[],
    blockTags: string[],
    cost: number,
    blocking?: Blocking,
    denyOnly = false,
  ): Promise<RateVerdict> {
    const tags = blocking ? blockTags : [];
    const keys = [
      ...tags.flatMap((t) => [this.names.block(t), this.names.offences(t), this.names.denials(t)]),
      ...items.map((i) => this.names.bucket(i.tag, i.limit.bucketId)),
    ];
    const b = blocking
      ? [
          blocking.after,
          blocking.withinMs,
          blocking.durationMs,
          blocking.factor,
          blocking.maxDurationMs,
          blocking.forgetAfterMs,
        ]
      : NO_BLOCKING;
    const args = [
      cost,
      tags.length,
      ...b,
      items.length,
      ...limitArgs(items),
      ...(denyOnly ? ["deny"] : []),
    ];
    const r = await runScript<number[]>(this.redis, SCRIPTS.rateLimit, keys, args);
    return parseVerdict(r, tags, items.length);
  }

  /** One "force" call of rate-limit-n.lua over `items` (one slot), with its marker if any. */
  private async runForce(
    items: LimitItem[],
    cost: number,
    marker: { key: string; ttlMs: number } | undefined,
  ): Promise<ForceChargeVerdict> {
    const keys = [
      ...items.map((i) => this.names.bucket(i.tag, i.limit.bucketId)),
      ...(marker ? [marker.key] : []),
    ];
    const args = [
      cost,
      0,
      ...NO_BLOCKING,
      items.length,
      ...limitArgs(items),
      "force",
      ...(marker ? [marker.ttlMs] : []),
    ];
    const r = await runScript<number[]>(this.redis, SCRIPTS.rateLimit, keys, args);
    const reply = decodeRateLimitReply(r, items.length);
    return { duplicate: Number(r[0]) === RATE_STATUS.duplicate, outcomes: reply.limits };
  }

  /**
   * Refunds the charges of `items` and resolves, in their order, to each
   * bucket's remaining and reset after the refund (a quota's reset only when
   * its key still exists: the window end does not move with a refund).
   */
  private async refund(
    items: LimitItem[],
    cost: number,
  ): Promise<{ remaining: number; resetMs?: number }[]> {
    const after: { remaining: number; resetMs?: number }[] = items.map(() => ({ remaining: -1 }));
    // Refunds group by tag too: one script call per slot.
    const byTag = new Map<string, number[]>();
    items.forEach((it, i) => {
      byTag.set(it.tag, [...(byTag.get(it.tag) ?? []), i]);
    });
    for (const idx of byTag.values()) {
      const group = idx.map((i) => items[i] as LimitItem);
      const keys = group.map((i) => this.names.bucket(i.tag, i.limit.bucketId));
      const args = group.flatMap((i) => [
        i.limit.kind === "rate" ? 1 : i.limit.kind === "credits" ? 3 : 2,
        i.limit.requests,
        i.limit.kind === "rate" ? i.limit.periodMs : 0,
        i.limit.kind === "rate" ? i.limit.burst : 0,
        i.cost || cost,
      ]);
      const r = decodeRefundReply(
        await runScript<unknown[]>(this.redis, SCRIPTS.refund, keys, args),
        group.length,
      );
      idx.forEach((i, j) => {
        after[i] = r[j] as { remaining: number; resetMs?: number };
      });
    }
    return after;
  }

  /** Redis's clock in epoch ms (the clock the scripts use). */
  private async redisNow(): Promise<number> {
    const [sec, usec] = await this.redis.time();
    return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
  }

  private async indexBlocks(blocks: { tag: string; durationMs: number }[]): Promise<void> {
    if (blocks.length === 0) return;
    const index = this.names.blockIndex();
    const now = await this.redisNow();
    // GT: a concurrent longer block (placeBlock) is never moved earlier.
    for (const b of blocks) await this.redis.zadd(index, "GT", now + b.durationMs, b.tag);
    const longest = Math.max(...blocks.map((b) => b.durationMs));
    if ((await this.redis.pttl(index)) < longest) await this.redis.pexpire(index, longest);
  }
}

/** Maps the script's decoded reply onto a verdict (see the header of rate-limit-n.lua). */
export function parseVerdict(r: number[], tags: readonly string[], count: number): RateVerdict {
  const reply = decodeRateLimitReply(r, count);
  const tagAt = (subject: number) => tags[subject - 1] as string;
  return {
    status: reply.status,
    outcomes: reply.limits,
    blockMs: reply.blockMs,
    newBlocks: reply.newBlocks.map((b) => ({ tag: tagAt(b.subject), durationMs: b.durationMs })),
    ...(reply.blockedSubject > 0 && { blockedTag: tagAt(reply.blockedSubject) }),
  };
}
