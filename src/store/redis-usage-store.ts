import type {
  UsageCounts,
  UsageIncrement,
  UsageResolution,
  UsageStore,
} from "../events/usage-store.js";
import { bucketStart } from "../util/time-buckets.js";
import type { RedisClient } from "./redis-client.js";
import { usageKeyNames } from "./redis-keys.js";

/**
 * Usage counters in Redis: HINCRBY on one hash per key per minute and per hour
 * (with PEXPIRE = retention). Increments are aggregated by the caller and
 * issued together, so ioredis auto-pipelining sends them in one write.
 */
export class RedisUsageStore implements UsageStore {
  private readonly names: ReturnType<typeof usageKeyNames>;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
    private readonly retentionMs: number,
  ) {
    this.names = usageKeyNames(prefix);
  }

  async add(increments: readonly UsageIncrement[]): Promise<void> {
    const ops: Promise<unknown>[] = [];
    for (const inc of increments) {
      for (const res of ["minute", "hour"] as const) {
        const k = this.names.counts(inc.keyId, res, bucketStart(inc.at, res));
        ops.push(this.redis.hincrby(k, inc.endpoint, inc.requests));
        ops.push(this.redis.pexpire(k, this.retentionMs));
      }
    }
    await Promise.all(ops);
  }

  async read(
    keyId: string,
    resolution: UsageResolution,
    starts: readonly number[],
  ): Promise<UsageCounts[]> {
    const rows = await Promise.all(
      starts.map((s) => this.redis.hgetall(this.names.counts(keyId, resolution, s))),
    );
    return rows.map((r) => {
      const out: UsageCounts = {};
      for (const [ep, n] of Object.entries(r)) out[ep] = Number(n);
      return out;
    });
  }
}
