/** The embedded OverrideStore: owner overrides and the index in process memory. */
import type { LimitOverride } from "../ratelimit/limit-override.js";
import type { OverrideStore } from "../ratelimit/override-store.js";

/** Owner overrides in a Map (one replica: nothing to share). */
export class MemoryOverrideStore implements OverrideStore {
  private readonly byOwner = new Map<string, Map<string, LimitOverride>>();
  private readonly keyIds = new Set<string>();

  async ownerOverrides(owner: string): Promise<LimitOverride[]> {
    return [...(this.byOwner.get(owner)?.values() ?? [])].map((o) => ({ ...o }));
  }

  async setOwnerOverride(owner: string, override: LimitOverride): Promise<void> {
    let m = this.byOwner.get(owner);
    if (!m) {
      m = new Map();
      this.byOwner.set(owner, m);
    }
    m.set(override.limit, { ...override });
  }

  async removeOwnerOverrides(owner: string, limits: readonly string[]): Promise<number> {
    const m = this.byOwner.get(owner);
    if (!m) return 0;
    let n = 0;
    for (const l of limits) if (m.delete(l)) n++;
    if (m.size === 0) this.byOwner.delete(owner);
    return n;
  }

  async owners(max: number): Promise<string[]> {
    return [...this.byOwner.keys()].slice(0, max);
  }

  async markKey(keyId: string, hasOverrides: boolean): Promise<void> {
    if (hasOverrides) this.keyIds.add(keyId);
    else this.keyIds.delete(keyId);
  }

  async keys(max: number): Promise<string[]> {
    return [...this.keyIds].slice(0, max);
  }
}
