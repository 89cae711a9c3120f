import { EventEmitter } from "node:events";
import type { RedisClient } from "./redis-key-store.js";

/** A cache invalidation: the digests whose cached lookups are stale. */
export interface Invalidation {
  digests: string[];
}

/**
 * Carries invalidations to every replica. Delivery is best effort (Redis pub/sub
 * has no replay), so caches also expire entries by TTL: a lost message delays,
 * never prevents, an invalidation.
 */
export interface InvalidationBus {
  publish(message: Invalidation): Promise<void>;
  /** Registers the handler; resolves once subscribed. */
  subscribe(handler: (message: Invalidation) => void): Promise<void>;
  close(): Promise<void>;
}

/** In-process bus for the embedded store (one replica, so local delivery is complete). */
export class MemoryInvalidationBus implements InvalidationBus {
  private readonly emitter = new EventEmitter();
  async publish(message: Invalidation): Promise<void> {
    this.emitter.emit("m", message);
  }
  async subscribe(handler: (message: Invalidation) => void): Promise<void> {
    this.emitter.on("m", handler);
  }
  async close(): Promise<void> {
    this.emitter.removeAllListeners();
  }
}

/**
 * Redis pub/sub bus. Subscribing needs a dedicated connection, made with
 * `duplicate()` so it inherits the main client's settings (TLS, auth, Cluster).
 */
export class RedisInvalidationBus implements InvalidationBus {
  private subscriber: RedisClient | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly channel: string,
    private readonly onBadMessage: (err: unknown) => void = () => {},
  ) {}

  async publish(message: Invalidation): Promise<void> {
    await this.redis.publish(this.channel, JSON.stringify(message));
  }

  async subscribe(handler: (message: Invalidation) => void): Promise<void> {
    const sub = (this.redis.duplicate as () => RedisClient)();
    this.subscriber = sub;
    sub.on("message", (channel: string, text: string) => {
      if (channel !== this.channel) return;
      try {
        const parsed = JSON.parse(text) as Partial<Invalidation>;
        if (!Array.isArray(parsed.digests)) throw new Error("invalidation without digests");
        handler({ digests: parsed.digests.filter((d): d is string => typeof d === "string") });
      } catch (err) {
        this.onBadMessage(err);
      }
    });
    await sub.subscribe(this.channel);
  }

  async close(): Promise<void> {
    await this.subscriber?.quit().catch(() => undefined);
  }
}
