import type { LimitOverride } from "./limit-override.js";

/**
 * Where owner overrides live (a key's own live in its record, keys/key-record.ts),
 * and an index of the keys and owners that have any, for listing them all.
 * Expired overrides are returned as stored: callers filter by time and remove
 * them (removeOwnerOverrides).
 */
export interface OverrideStore {
  /** An owner's overrides, in no particular order (empty: none). */
  ownerOverrides(owner: string): Promise<LimitOverride[]>;
  /** Sets (or replaces, by limit name) one of an owner's overrides. */
  setOwnerOverride(owner: string, override: LimitOverride): Promise<void>;
  /** Removes an owner's overrides of these limits; resolves to how many there were. */
  removeOwnerOverrides(owner: string, limits: readonly string[]): Promise<number>;
  /** Owners with at least one override (as last written), at most `max`. */
  owners(max: number): Promise<string[]>;
  /** Records whether a key's record holds overrides (the index ListLimitOverrides reads). */
  markKey(keyId: string, hasOverrides: boolean): Promise<void>;
  /** Keys marked as holding overrides, at most `max`. */
  keys(max: number): Promise<string[]>;
}
