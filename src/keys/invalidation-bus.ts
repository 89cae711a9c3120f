/**
 * A message to every replica: cached key lookups that are stale (by digest and
 * by key id), blocks placed (so each replica refuses the subject without a store
 * call), blocks lifted, foreign key prefixes an import registered, and
 * owners whose limit overrides changed.
 */
export interface Invalidation {
  digests: string[];
  ids?: string[];
  blocks?: { tag: string; until: number }[];
  unblocks?: string[];
  prefixes?: string[];
  /** Owners whose limit overrides changed (ratelimit/owner-overrides.ts drops them). */
  owners?: string[];
}

/**
 * Carries invalidations to every replica. Delivery is best effort (Redis pub/sub
 * has no replay), so caches also expire entries by TTL: a lost message delays,
 * never prevents, an invalidation.
 */
export interface InvalidationBus {
  publish(message: Invalidation): Promise<void>;
  /** Registers the handler; resolves once subscribed. `onResubscribe`: messages may have been lost. */
  subscribe(handler: (message: Invalidation) => void, onResubscribe?: () => void): Promise<void>;
  close(): Promise<void>;
}
