import type {
  DetectionStore,
  SpikeOp,
  SpikeResult,
  TrackOp,
  WindowOp,
  WindowResult,
} from "./detection-store.js";
import { SCRIPTS } from "./lua-scripts.js";
import type { RedisClient } from "./redis-client.js";
import { tagValue } from "./redis-keys.js";
import { runScript } from "./script-runner.js";

/** Redis key names of detection state under `prefix`, hash-tagged by subject. */
export function detectionKeyNames(prefix: string) {
  return {
    /** Sliding window of a rule for a subject (sorted set). */
    window: (tag: string, rule: string) => `${prefix}dw:{${tagValue(tag)}}:${rule}`,
    /** Spike state of a rule for a key (hash). */
    spike: (tag: string, rule: string) => `${prefix}ds:{${tagValue(tag)}}:${rule}`,
    /** Cool-down marker of a rule for a subject. */
    cooldown: (tag: string, rule: string) => `${prefix}dc:{${tagValue(tag)}}:${rule}`,
    /** The subjects a rule tracks (sorted set by last seen), in the rule's own slot. */
    tracked: (rule: string) => `${prefix}dt:{dt:${tagValue(rule)}}`,
  };
}

/**
 * Detection state in Redis: one script call per (rule, subject) update, every
 * key of a call under the subject's hash tag, so it runs unchanged on Cluster.
 * Each rule's tracked subjects are one sorted set in the rule's slot
 * (`detect-track-1.lua`), which bounds how many windows a rule keeps.
 */
export class RedisDetectionStore implements DetectionStore {
  private readonly names: ReturnType<typeof detectionKeyNames>;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
  ) {
    this.names = detectionKeyNames(prefix);
  }

  async window(op: WindowOp): Promise<WindowResult> {
    const [count, fired] = await runScript<number[]>(
      this.redis,
      SCRIPTS.detectWindow,
      [this.names.window(op.tag, op.rule), this.names.cooldown(op.tag, op.rule)],
      [
        op.mode === "count" ? 1 : op.mode === "new" ? 2 : 3,
        op.windowMs,
        op.threshold,
        op.cap,
        op.cooldownMs,
        ...op.members,
      ],
    );
    return { count: Number(count), fired: fired === 1 };
  }

  async track(op: TrackOp): Promise<string[]> {
    return runScript<string[]>(
      this.redis,
      SCRIPTS.detectTrack,
      [this.names.tracked(op.rule)],
      [op.lifetimeMs, op.cap, ...op.tags],
    );
  }

  async forget(rule: string, tags: readonly string[]): Promise<void> {
    // One DEL per subject: their keys live in different slots on Cluster.
    await Promise.all(
      tags.map((t) => this.redis.del(this.names.window(t, rule), this.names.spike(t, rule))),
    );
  }

  async spike(op: SpikeOp): Promise<SpikeResult> {
    const [current, baseline, fired] = await runScript<number[]>(
      this.redis,
      SCRIPTS.detectSpike,
      [this.names.spike(op.tag, op.rule), this.names.cooldown(op.tag, op.rule)],
      [
        op.requests,
        op.bucketMs,
        op.alpha,
        op.factor,
        op.minHistory,
        op.minRequests,
        op.cooldownMs,
        op.ttlMs,
      ],
    );
    return { current: Number(current), baseline: Number(baseline) / 1000, fired: fired === 1 };
  }
}
