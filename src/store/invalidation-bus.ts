/**
 * The two InvalidationBus implementations (the interface is the keys
 * domain's, keys/invalidation-bus.ts): in-process for the embedded store,
 * Redis pub/sub for replicas sharing a Redis.
 */
import { EventEmitter } from "node:events";
import type { Invalidation, InvalidationBus } from "../keys/invalidation-bus.js";
import type { RedisClient } from "./redis-client.js";
import { duplicateForSubscribe } from "./redis-client.js";

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
  private closed = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly channel: string,
    private readonly onBadMessage: (err: unknown) => void = () => {},
  ) {}

  async publish(message: Invalidation): Promise<void> {
    // Blocks travel as time *left*, not an end time: replicas' clocks differ.
    const now = Date.now();
    const wire = {
      ...message,
      blocks: message.blocks?.map((b) => ({ tag: b.tag, ms: Math.max(0, b.until - now) })),
    };
    await this.redis.publish(this.channel, JSON.stringify(wire));
  }

  /**
   * Subscribes; resolves once subscribed. While Redis is unreachable the
   * subscription waits (callers should not await it at startup). `onResubscribe`
   * runs when a lost subscription is back, since messages sent meanwhile are gone.
   */
  async subscribe(
    handler: (message: Invalidation) => void,
    onResubscribe?: () => void,
  ): Promise<void> {
    const sub = duplicateForSubscribe(this.redis);
    let readyBefore = false;
    sub.on("ready", () => {
      if (readyBefore) onResubscribe?.();
      readyBefore = true;
    });
    sub.on("error", () => {});
    this.subscriber = sub;
    sub.on("message", (channel: string, text: string) => {
      if (channel !== this.channel) return;
      try {
        handler(parseInvalidation(text));
      } catch (err) {
        this.onBadMessage(err);
      }
    });
    await sub.subscribe(this.channel).catch((err: Error) => {
      // Closing rejects a subscription still waiting for Redis: not a failure.
      if (!this.closed) throw err;
    });
  }

  /**
   * Closes the subscriber connection at once. It only receives, so there is
   * nothing to flush, and QUIT could wait forever: the connection has an
   * offline queue (QUIT queues behind a SUBSCRIBE that waits for Redis) and no
   * command timeout (a paused Redis never answers).
   */
  async close(): Promise<void> {
    this.closed = true;
    this.subscriber?.disconnect();
  }
}

const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];

/** Parses a bus message defensively: anything malformed throws, unknown fields are ignored. */
export function parseInvalidation(text: string): Invalidation {
  const p = JSON.parse(text) as Record<string, unknown>;
  if (typeof p !== "object" || p === null) throw new Error("bus message is not an object");
  const now = Date.now();
  const blocks = Array.isArray(p.blocks)
    ? p.blocks.flatMap((b: unknown) => {
        const o = b as { tag?: unknown; ms?: unknown };
        return typeof o?.tag === "string" && typeof o.ms === "number" && o.ms >= 0
          ? [{ tag: o.tag, until: now + o.ms }]
          : [];
      })
    : [];
  return {
    digests: strings(p.digests),
    ids: strings(p.ids),
    blocks,
    unblocks: strings(p.unblocks),
    prefixes: strings(p.prefixes),
    owners: strings(p.owners),
  };
}
