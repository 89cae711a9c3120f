/**
 * Usage counters: requests per key × endpoint per UTC minute, plus per hour
 * (so long ranges read few records). Every counter expires after the usage
 * retention.
 */

import type { TimeBucket } from "../util/time-buckets.js";

/** Requests to add for one key and endpoint at one time. */
export interface UsageIncrement {
  keyId: string;
  /** Policy endpoint name, `-` for none. */
  endpoint: string;
  /** Epoch ms of the requests (the minute and hour they count in). */
  at: number;
  requests: number;
}

/** Counts of one bucket: endpoint → requests. */
export type UsageCounts = Record<string, number>;

/** Width of a stored bucket (see util/time-buckets.ts). */
export type UsageResolution = TimeBucket;

/** Usage counters. */
export interface UsageStore {
  add(increments: readonly UsageIncrement[]): Promise<void>;
  /**
   * Counts of `keyId` per bucket starting at each of `starts` (epoch ms, aligned
   * to the resolution), in the same order; an empty object for no requests.
   */
  read(
    keyId: string,
    resolution: UsageResolution,
    starts: readonly number[],
  ): Promise<UsageCounts[]>;
}
