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
   * `sum`: members are `<weight>:<unique id>`, each standing for `weight`
   * events; fire when the window's weights add up to ≥ threshold.
   */
  mode: "count" | "new" | "sum";
  /** Members to add (weighted batch ids, IPs, key fingerprints, networks), at least one. */
  members: readonly string[];
  windowMs: number;
  threshold: number;
  /** Most members kept (the newest stay). */
  cap: number;
  cooldownMs: number;
}

/** Result of a window update. */
export interface WindowResult {
  /** Members in the window after the update (capped); in `sum` mode, the sum of their weights. */
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

/** Subjects of one rule seen in a batch, for the bound on tracked subjects. */
export interface TrackOp {
  rule: string;
  /** Subject tags of the batch, at least one. */
  tags: readonly string[];
  /** How long an unseen subject's state lasts (the rule's window or state expiry), ms. */
  lifetimeMs: number;
  /** Most subjects the rule tracks, over all replicas. */
  cap: number;
}

/** Detection counters; the store's clock (Redis TIME) decides windows and buckets. */
export interface DetectionStore {
  window(op: WindowOp): Promise<WindowResult>;
  spike(op: SpikeOp): Promise<SpikeResult>;
  /**
   * Marks the batch's subjects as seen and returns the tags the rule must stop
   * tracking to stay within the cap (least recently seen first; may include
   * tags of this batch). Stores without it keep no shared subject bound.
   */
  track?(op: TrackOp): Promise<string[]>;
  /** Drops the window and spike state of a rule for these subjects (not their cool-downs). */
  forget?(rule: string, tags: readonly string[]): Promise<void>;
}
