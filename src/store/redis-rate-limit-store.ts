import type { Blocking } from "../policy/policy.js";
import { loadLuaScript, withNoScriptRetry } from "./lua-scripts.js";
import {
  type ActiveBlock,
  type LimitItem,
  type LimitOutcome,
  limitArgs,
  type RateLimitStore,
  type RateRequest,
  type RateVerdict,
} from "./rate-limit-store.js";
import type { RedisClient } from "./redis-key-store.js";
import type { KeyNames } from "./redis-keys.js";

type ScriptClient = RedisClient & {
  tgRateLimit(numKeys: number, ...args: (string | number)[]): Promise<number[]>;
  tgRefund(numKeys: number, ...args: (string | number)[]): Promise<number>;
};

const NO_BLOCKING = [1, 1000, 1000, 1, 1000, 60_000];
const RATE_LIMIT = loadLuaScript("rate-limit-n.lua");
const REFUND = loadLuaScript("refund-n.lua");

/**
 * Rate limits on Redis. On standalone Redis (and Sentinel) a decision is one
 * EVALSHA of `rate-limit-n.lua` over every bucket: one round trip, all or
 * nothing. On Cluster, buckets are grouped by subject tag (one hash slot each)
 * and the groups run one after another; when a later group denies, the earlier
 * groups' charges are refunded with `refund-n.lua`. A decision touching k
 * subjects therefore costs k round trips on Cluster (plus one on denial).
 */
export class RedisRateLimitStore implements RateLimitStore {
  private readonly redis: ScriptClient;
  private readonly cluster: boolean;

  constructor(
    redis: RedisClient,
    private readonly names: KeyNames,
  ) {
    if (!("tgRateLimit" in redis)) {
      redis.defineCommand("tgRateLimit", RATE_LIMIT);
      redis.defineCommand("tgRefund", REFUND);
    }
    this.redis = redis as ScriptClient;
    this.cluster = redis.isCluster;
  }

  async decide(req: RateRequest): Promise<RateVerdict> {
    if (!this.cluster) {
      const v = await this.run(req.items, req.blockTags, req.cost, req.blocking);
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
    const charged: LimitItem[] = [];
    for (const tag of order) {
      const idx = req.items.flatMap((it, i) => (it.tag === tag ? [i] : []));
      const items = idx.map((i) => req.items[i] as LimitItem);
      const v = await this.run(
        items,
        req.blockTags.includes(tag) ? [tag] : [],
        req.cost,
        req.blocking,
      );
      idx.forEach((i, j) => {
        outcomes[i] = v.outcomes[j] as LimitOutcome;
      });
      if (v.status !== "ok") {
        await this.refund(charged, req.cost);
        const newBlocks = [...v.newBlocks];
        if (v.status === "limited" && req.blocking) {
          // Standalone counts a denial for every blocking subject in one script;
          // here the other subjects live in other slots: one call each.
          for (const other of req.blockTags) {
            if (other === tag) continue;
            const d = await this.run([], [other], req.cost, req.blocking, true);
            newBlocks.push(...d.newBlocks);
          }
        }
        await this.indexBlocks(newBlocks);
        return { ...v, outcomes, newBlocks };
      }
      items.forEach((it, j) => {
        if (!v.outcomes[j]?.exceeded) charged.push(it);
      });
    }
    return { status: "ok", outcomes, blockMs: 0, newBlocks: [] };
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

  async placeBlock(tag: string, durationMs: number): Promise<number> {
    const key = this.names.block(tag);
    const ttl = await this.redis.pttl(key);
    if (ttl >= durationMs) return Date.now() + ttl;
    // Same key and value (offence level) as rate-limit-n.lua's blocks, so every
    // rate-limited decision and ListBlocks / DeleteBlock see it.
    await this.redis.set(key, "1", "PX", durationMs);
    await this.indexBlocks([{ tag, durationMs }]);
    return Date.now() + durationMs;
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
    const r = await withNoScriptRetry(
      () => this.redis.tgRateLimit(keys.length, ...keys, ...args),
      () => this.redis.eval(RATE_LIMIT.lua, keys.length, ...keys, ...args),
    );
    return parseVerdict(r, tags, items.length);
  }

  private async refund(items: LimitItem[], cost: number): Promise<void> {
    // Refunds group by tag too: one script call per slot.
    const byTag = new Map<string, LimitItem[]>();
    for (const it of items) byTag.set(it.tag, [...(byTag.get(it.tag) ?? []), it]);
    for (const group of byTag.values()) {
      const keys = group.map((i) => this.names.bucket(i.tag, i.limit.bucketId));
      const args = group.flatMap((i) => [
        i.limit.kind === "rate" ? 1 : 2,
        i.limit.requests,
        i.limit.kind === "rate" ? i.limit.periodMs : 0,
        i.cost || cost,
      ]);
      await withNoScriptRetry(
        () => this.redis.tgRefund(keys.length, ...keys, ...args),
        () => this.redis.eval(REFUND.lua, keys.length, ...keys, ...args),
      );
    }
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
    for (const b of blocks) await this.redis.zadd(index, now + b.durationMs, b.tag);
    const longest = Math.max(...blocks.map((b) => b.durationMs));
    if ((await this.redis.pttl(index)) < longest) await this.redis.pexpire(index, longest);
  }
}

/** Decodes the script's flat reply (see the header of rate-limit-n.lua). */
export function parseVerdict(r: number[], tags: readonly string[], count: number): RateVerdict {
  const status = r[0] === 2 ? "blocked" : r[0] === 1 ? "limited" : "ok";
  const blockedIndex = Number(r[2]);
  const nNew = Number(r[3]);
  const newBlocks: { tag: string; durationMs: number }[] = [];
  let at = 4;
  for (let i = 0; i < nNew; i++, at += 2) {
    newBlocks.push({ tag: tags[Number(r[at]) - 1] as string, durationMs: Number(r[at + 1]) });
  }
  const outcomes: LimitOutcome[] = [];
  for (let i = 0; i < count; i++, at += 4) {
    outcomes.push({
      exceeded: r[at] === 1,
      remaining: Number(r[at + 1]),
      resetMs: Number(r[at + 2]),
      retryMs: Number(r[at + 3]),
    });
  }
  return {
    status,
    outcomes,
    blockMs: Number(r[1]),
    newBlocks,
    ...(blockedIndex > 0 && { blockedTag: tags[blockedIndex - 1] as string }),
  };
}
