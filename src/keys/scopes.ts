/**
 * Scope matching. A granted scope grants itself; a granted scope ending in `*`
 * grants every scope with that prefix (`orders:*` grants `orders:read`), and
 * `*` grants everything.
 */
export function grants(granted: readonly string[], required: string): boolean {
  for (const g of granted) {
    if (g === required) return true;
    if (g.endsWith("*") && required.startsWith(g.slice(0, -1))) return true;
  }
  return false;
}

/** The required scopes not granted, in order, without duplicates. */
export function missingScopes(granted: readonly string[], required: Iterable<string>): string[] {
  const missing = new Set<string>();
  for (const r of required) if (!grants(granted, r)) missing.add(r);
  return [...missing];
}
