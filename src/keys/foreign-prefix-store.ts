/**
 * The foreign key prefixes an import registered (see keys/foreign-keys.ts).
 * Kept in the store beside the keys, so every replica learns them at start,
 * and as bounded as the import that writes them (MAX_FOREIGN_PREFIXES).
 */
export interface ForeignPrefixStore {
  /** Adds prefixes (already present ones are no-ops). */
  add(prefixes: readonly string[]): Promise<void>;
  /** Every registered prefix, in no particular order. */
  list(): Promise<string[]>;
}
