/**
 * Chooses what a full structure evicts: the entries holding the least first.
 *
 * `values[i]` is what entry `i` holds (its eviction rank: lower goes first),
 * `sizes[i]` its estimated bytes; entries are indexed in the structure's age
 * order (oldest first), which breaks ties. Returns a flag per entry (1: evict)
 * choosing the fewest entries, in that order, after which at most
 * `keepEntries` entries and `keepBytes` bytes remain.
 *
 * The values are sorted (a copy, native numeric sort); a binary search over
 * them finds the lowest value `t` such that evicting every entry worth ≤ `t`
 * is enough (one linear pass per probe); then every entry worth < `t` goes,
 * and those worth exactly `t` oldest first until the bounds hold. O(n log n),
 * run once per batch of evictions, never per write.
 */
export function pickEvictions(
  values: Float64Array,
  sizes: Float64Array,
  keepEntries: number,
  keepBytes: number,
): Uint8Array {
  const n = values.length;
  const evict = new Uint8Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) total += sizes[i] as number;
  if (n <= keepEntries && total <= keepBytes) return evict;
  /** Whether evicting every entry worth ≤ t leaves the bounds holding. */
  const enough = (t: number) => {
    let count = 0;
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      if ((values[i] as number) <= t) {
        count++;
        bytes += sizes[i] as number;
      }
    }
    return n - count <= keepEntries && total - bytes <= keepBytes;
  };
  const sorted = values.slice().sort();
  let lo = 0;
  let hi = n - 1; // evicting everything is always enough
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (enough(sorted[mid] as number)) hi = mid;
    else lo = mid + 1;
  }
  const t = sorted[lo] as number;
  let entries = n;
  let bytes = total;
  for (let i = 0; i < n; i++) {
    if ((values[i] as number) < t) {
      evict[i] = 1;
      entries--;
      bytes -= sizes[i] as number;
    }
  }
  for (let i = 0; i < n && (entries > keepEntries || bytes > keepBytes); i++) {
    if (values[i] === t) {
      evict[i] = 1;
      entries--;
      bytes -= sizes[i] as number;
    }
  }
  return evict;
}
