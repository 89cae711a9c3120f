import type {
  DetectionStore,
  SpikeOp,
  SpikeResult,
  TrackOp,
  WindowOp,
  WindowResult,
} from "../events/detection-store.js";
import { SCRIPTS } from "./lua-scripts.js";
import type { RedisClient } from "./redis-client.js";
import { detectionKeyNames } from "./redis-keys.js";
import { decodeSpikeReply, decodeWindowReply } from "./script-replies.js";
import { runScript } from "./script-runner.js";

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
    const r = await runScript<unknown[]>(
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
    return decodeWindowReply(r);
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
    const r = await runScript<unknown[]>(
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
    return decodeSpikeReply(r);
  }
}
