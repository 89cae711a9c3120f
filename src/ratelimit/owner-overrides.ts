/**
 * Owner overrides as decisions read them: a bounded local cache in front of
 * the OverrideStore, so a decision on a warm cache makes no store call for
 * them — an owner's overrides, and the fact that it has none, are cached
 * alike. Two bounds:
 *
 *  - entries: at most `maxEntries` owners (OWNER_OVERRIDES_MAX_ENTRIES by
 *    default); the oldest-read is dropped first;
 *  - staleness: an entry is trusted for `ttlMs` (TOLLGATE_CACHE_TTL_MS, the
 *    key cache's TTL); a change is announced on the invalidation bus, so
 *    every replica drops the owner at once, and the TTL bounds what a lost
 *    bus message can delay.
 *
 * A store read under way when an invalidation arrives is answered but not
 * cached (it may hold the state from before the change). A store failure
 * answers the stale copy if there is one, else "none": the decision's own
 * store call then meets the same failure and its fail mode decides.
 */
import { beforeDeadline } from "../resilience/caller-deadline.js";
import type { Clock } from "../util/clock.js";
import type { LimitOverride } from "./limit-override.js";
import type { OverrideStore } from "./override-store.js";

/** Owners whose overrides one replica keeps cached, at most. */
export const OWNER_OVERRIDES_MAX_ENTRIES = 10_000;

/** Options of OwnerOverrides. */
export interface OwnerOverridesOptions {
  store: OverrideStore;
  clock: Clock;
  /** How long an entry is trusted without asking the store, ms (TOLLGATE_CACHE_TTL_MS). */
  ttlMs: number;
  /** Owners cached at most. Default OWNER_OVERRIDES_MAX_ENTRIES. */
  maxEntries?: number;
  /** Told of a failed store read (the decision goes on without fresh overrides). */
  onError?: (err: unknown) => void;
}

interface Entry {
  overrides: readonly LimitOverride[];
  readAt: number;
}

const NONE: readonly LimitOverride[] = Object.freeze([]);

/** Cached owner overrides (see the module comment for the bounds). */
export class OwnerOverrides {
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<readonly LimitOverride[]>>();
  private readonly max: number;
  private epoch = 0;

  constructor(private readonly o: OwnerOverridesOptions) {
    this.max = o.maxEntries ?? OWNER_OVERRIDES_MAX_ENTRIES;
  }

  /** The cached overrides of `owner` while fresh (the same array until a change); undefined: ask `load`. */
  cached(owner: string): readonly LimitOverride[] | undefined {
    const e = this.entries.get(owner);
    if (!e || this.o.clock.now() - e.readAt >= this.o.ttlMs) return undefined;
    return e.overrides;
  }

  /** The overrides of `owner`: cached, else read (concurrent reads of one owner share one call). */
  async get(owner: string, deadline?: number): Promise<readonly LimitOverride[]> {
    const hit = this.cached(owner);
    if (hit) return hit;
    let p = this.inflight.get(owner);
    if (!p) {
      const loading = this.load(owner, deadline).finally(() => {
        if (this.inflight.get(owner) === loading) this.inflight.delete(owner);
      });
      p = loading;
      this.inflight.set(owner, p);
    }
    return p;
  }

  /** Drops these owners' entries (a change here or on another replica). */
  invalidate(owners: readonly string[]): void {
    if (owners.length === 0) return;
    this.epoch++;
    for (const o of owners) {
      this.entries.delete(o);
      this.inflight.delete(o);
    }
  }

  /** Drops every entry (bus messages may have been lost). */
  expireAll(): void {
    this.epoch++;
    this.entries.clear();
    this.inflight.clear();
  }

  /** Owners cached now. */
  get size(): number {
    return this.entries.size;
  }

  private async load(owner: string, deadline?: number): Promise<readonly LimitOverride[]> {
    const epoch = this.epoch;
    let read: LimitOverride[];
    try {
      read = await beforeDeadline(this.o.store.ownerOverrides(owner), deadline, "overrides.owner");
    } catch (err) {
      this.o.onError?.(err);
      return this.entries.get(owner)?.overrides ?? NONE;
    }
    const overrides = read.length === 0 ? NONE : Object.freeze(read);
    if (epoch === this.epoch) this.remember(owner, overrides);
    return overrides;
  }

  private remember(owner: string, overrides: readonly LimitOverride[]): void {
    const prev = this.entries.get(owner);
    this.entries.delete(owner);
    // Same content as before: keep the old array, so memoised plans stay warm.
    const kept = prev && sameOverrides(prev.overrides, overrides) ? prev.overrides : overrides;
    this.entries.set(owner, { overrides: kept, readAt: this.o.clock.now() });
    while (this.entries.size > this.max) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }
}

function sameOverrides(a: readonly LimitOverride[], b: readonly LimitOverride[]): boolean {
  if (a.length !== b.length) return false;
  const key = (l: readonly LimitOverride[]) =>
    JSON.stringify([...l].sort((x, y) => (x.limit < y.limit ? -1 : 1)));
  return key(a) === key(b);
}
