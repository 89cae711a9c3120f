/**
 * The optional allow-cache (off by default): remembers ALLOWED Authorize
 * decisions taken WITHOUT `apply_limits` for a short time, so a hot key does
 * not cost a round trip per request.
 *
 * - Bounded: an LRU of at most `maxEntries` (default 10 000) decisions (lru-cache).
 * - Keyed by SHA-256 of (key, method, path, endpoint, client IP, sorted scopes):
 *   the raw key is never kept in memory by the cache.
 * - Denials and `apply_limits` decisions are never cached: a denial must be
 *   re-evaluated (the key may be fixed) and a charging call must reach the server.
 * - The TTL is clamped to at most {@link MAX_ALLOW_CACHE_TTL_MS} (5 000 ms), the
 *   server's documented revocation bound (`TOLLGATE_CACHE_TTL_MS`, default
 *   5000): a key revoked on the server may still be allowed from this cache for
 *   at most that long, and never longer than the server itself could.
 */
import { createHash } from "node:crypto";
import { LRUCache } from "lru-cache";

/** The longest an allowed decision is kept: the server's revocation bound. */
export const MAX_ALLOW_CACHE_TTL_MS = 5_000;

/** Allow-cache settings. */
export interface AllowCacheOptions {
  /** Most decisions kept (least recently used dropped first). Default 10 000. */
  maxEntries?: number;
  /** How long an allowed decision is reused, in ms; clamped to 1..5000. Default 5000. */
  ttlMs?: number;
  /** The clock, in ms (tests); `performance.now` unless given. */
  now?: () => number;
}

/** What identifies one decision; hashed, never stored as is. */
export interface AllowCacheKey {
  apiKey: string;
  method: string;
  path: string;
  endpoint: string;
  clientIp: string;
  scopes: readonly string[];
}

/** A bounded, TTL-clamped cache of allowed decisions of type `V`. */
export class AllowCache<V extends object> {
  /** The effective TTL after clamping, in ms. */
  readonly ttlMs: number;
  private readonly lru: LRUCache<string, V>;

  constructor(o: AllowCacheOptions = {}) {
    const ttl = o.ttlMs ?? MAX_ALLOW_CACHE_TTL_MS;
    this.ttlMs = Math.min(MAX_ALLOW_CACHE_TTL_MS, Math.max(1, Math.floor(ttl)));
    const now = o.now;
    this.lru = new LRUCache<string, V>({
      max: Math.max(1, Math.floor(o.maxEntries ?? 10_000)),
      ttl: this.ttlMs,
      // Expired entries are never returned; no timers are kept.
      ttlAutopurge: false,
      ...(now && { perf: { now }, ttlResolution: 0 }),
    });
  }

  /** The SHA-256 (hex) of the request's identifying fields. */
  static digest(k: AllowCacheKey): string {
    const scopes = [...new Set(k.scopes)].sort();
    return createHash("sha256")
      .update(JSON.stringify([k.apiKey, k.method, k.path, k.endpoint, k.clientIp, scopes]))
      .digest("hex");
  }

  /** The cached decision, if one is fresh. */
  get(k: AllowCacheKey): V | undefined {
    return this.lru.get(AllowCache.digest(k));
  }

  /** Keeps an allowed decision for the TTL. */
  set(k: AllowCacheKey, v: V): void {
    this.lru.set(AllowCache.digest(k), v);
  }

  /** Decisions held now (expired ones may still count until touched). */
  get size(): number {
    return this.lru.size;
  }

  /** Forgets every decision (e.g. after revoking a key through this client). */
  clear(): void {
    this.lru.clear();
  }
}
