/**
 * What this replica does with the invalidations every replica publishes:
 * drop changed keys from its cache, apply blocks placed and lifted elsewhere,
 * learn newly registered foreign key prefixes.
 */
import type { ForeignKeys } from "../keys/foreign-keys.js";
import type { InvalidationBus } from "../keys/invalidation-bus.js";
import type { KeyLookup } from "../keys/key-lookup.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { BlockBook } from "../ratelimit/block-book.js";
import type { OwnerOverrides } from "../ratelimit/owner-overrides.js";

/** Options of subscribeInvalidations. */
export interface InvalidationSubscriberOptions {
  bus: InvalidationBus;
  lookup: KeyLookup;
  blocks: BlockBook;
  foreign: ForeignKeys;
  /** The cache of owner limit overrides. */
  ownerOverrides: OwnerOverrides;
  /** Re-reads the foreign key prefixes (never rejects). */
  refreshForeign: () => void;
  log: Logger;
  metrics: Metrics;
}

/**
 * Subscribes, without waiting: with Redis unreachable at startup the
 * subscription waits for it while Tollgate serves by fail mode. Lost messages
 * are bounded by the cache TTL; after a reconnect the cache is dropped so
 * nothing missed lingers.
 */
export function subscribeInvalidations(o: InvalidationSubscriberOptions): void {
  void o.bus
    .subscribe(
      (m) => {
        o.lookup.invalidate(m.digests, m.ids);
        o.blocks.apply(m);
        if (m.prefixes?.length) o.foreign.add(m.prefixes);
        if (m.owners?.length) o.ownerOverrides.invalidate(m.owners);
        o.metrics.invalidations.inc({ origin: "remote" });
      },
      () => {
        // Messages sent while disconnected are lost: every cached lookup must be
        // re-read, but stays available as the stale copy fail-open relies on.
        o.lookup.expireAll();
        o.ownerOverrides.expireAll();
        o.refreshForeign();
        o.log.warn("invalidation channel re-subscribed: every cached key will be re-read");
      },
    )
    .catch((err: Error) =>
      o.log.error({ err: { message: err.message } }, "invalidation subscribe failed"),
    );
}
