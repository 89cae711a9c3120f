/**
 * Shared detection state: sliding windows of members per (rule, subject), the
 * moving baselines of spike rules, and cool-downs. Counters live in the store
 * (Redis for every replica), so a rule sees the events of all replicas.
 */

/** One window update. */
export interface WindowOp {
  /** Subject tag (`i:10.0.0.1`, `k:key_…`): the window's slot on Cluster. */
  tag: string;
  rule: string;
  /**
   * `count`: add members, fire when the window holds ≥ threshold of them.
   * `new`: fire when some member was not in the window and the window held ≥ threshold before.
   */
  mode: "count" | "new";
  /** Members to add (event ids, IPs, key fingerprints, networks), at least one. */
  members: readonly string[];
  windowMs: number;
  threshold: number;
  /** Most members kept (the newest stay). */
  cap: number;
  cooldownMs: number;
}

/** Result of a window update. */
export interface WindowResult {
  /** Members in the window after the update (capped). */
  count: number;
  /** The rule fired and its cool-down for this subject was free (now taken). */
  fired: boolean;
}

/** One spike update: requests of a key to add to its current bucket. */
export interface SpikeOp {
  tag: string;
  rule: string;
  requests: number;
  bucketMs: number;
  alpha: number;
  factor: number;
  minHistory: number;
  minRequests: number;
  cooldownMs: number;
  /** How long idle state is kept, ms. */
  ttlMs: number;
}

/** Result of a spike update. */
export interface SpikeResult {
  /** Requests in the current bucket. */
  current: number;
  /** The moving baseline (requests per bucket). */
  baseline: number;
  fired: boolean;
}

/** Detection counters; the store's clock (Redis TIME) decides windows and buckets. */
export interface DetectionStore {
  window(op: WindowOp): Promise<WindowResult>;
  spike(op: SpikeOp): Promise<SpikeResult>;
}
