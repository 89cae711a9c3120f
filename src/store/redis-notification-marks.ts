import type { NotificationMarks } from "../events/notification-marks.js";
import type { RedisClient } from "./redis-client.js";
import { notificationKeyNames } from "./redis-keys.js";

/**
 * Markers in Redis: `SET <marker> 1 NX PX <ms until the period ends>`, one
 * command and one key (hash-tagged by the subject, so it lands in the
 * subject's slot on Cluster). The expiry is computed from this replica's
 * clock: replicas skewed by seconds name the same marker (its id carries the
 * period) and only disagree on its lifetime by the skew.
 */
export class RedisNotificationMarks implements NotificationMarks {
  private readonly names;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
    private readonly now: () => number = Date.now,
  ) {
    this.names = notificationKeyNames(prefix);
  }

  async claim(tag: string, id: string, untilMs: number): Promise<boolean> {
    const ttl = Math.max(1000, Math.ceil(untilMs - this.now()));
    return (await this.redis.set(this.names.mark(tag, id), "1", "PX", ttl, "NX")) === "OK";
  }
}
