/**
 * One deadline shared by several steps, so that a sequence of bounded waits
 * (shutdown: drain calls, flush events, close Redis) is bounded as a whole
 * rather than each step getting the full budget again.
 */

/** A point in time, measured on the monotonic clock. */
export interface Deadline {
  /** Milliseconds left, never negative (0 once it has passed). */
  remaining(): number;
}

/** A deadline `ms` milliseconds from now. */
export function createDeadline(ms: number): Deadline {
  const end = performance.now() + Math.max(0, ms);
  return { remaining: () => Math.max(0, end - performance.now()) };
}

/**
 * Waits for `p` for at most `ms` milliseconds. Resolves to true if `p` settled
 * (fulfilled or rejected: the caller handles its outcome) in time, false if
 * the time ran out first; never rejects. The timer is cleared as soon as `p`
 * settles, so nothing is left holding the event loop open.
 */
export function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = p.then(
    () => true,
    () => true,
  );
  const expired = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, ms));
  });
  return Promise.race([settled, expired]).finally(() => clearTimeout(timer));
}
