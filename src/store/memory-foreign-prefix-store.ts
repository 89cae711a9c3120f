import type { ForeignPrefixStore } from "../keys/foreign-prefix-store.js";

/** Foreign key prefixes in process memory (the embedded store). */
export class MemoryForeignPrefixStore implements ForeignPrefixStore {
  private readonly prefixes = new Set<string>();

  async add(prefixes: readonly string[]): Promise<void> {
    for (const p of prefixes) this.prefixes.add(p);
  }

  async list(): Promise<string[]> {
    return [...this.prefixes];
  }
}
