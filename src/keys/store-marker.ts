/**
 * The store marker: one record kept with the data that says whose data it is.
 * Today it holds the fingerprint of the pepper the keys were digested with, so
 * a replica started with another pepper refuses to start instead of answering
 * UNKNOWN_KEY for every key; later it can also tell an emptied store (marker
 * gone) from a new one.
 */

/** What `claim` found. */
export interface MarkerClaim {
  /** The fingerprint stored once the call returns (ours if `created`). */
  fingerprint: string;
  /** True if there was none and this call wrote it. */
  created: boolean;
}

/**
 * Storage of the marker. Implementations throw only on infrastructure failure.
 * The embedded store needs no marker at run time (its pepper is random per
 * process and nothing persists), but implements it so both pass one suite.
 */
export interface StoreMarker {
  /**
   * Records `fingerprint` unless a marker exists (atomically: of two replicas
   * claiming at once, one writes and both read the winner's value).
   */
  claim(fingerprint: string): Promise<MarkerClaim>;
  /** Overwrites the stored fingerprint: a deliberate change of pepper. */
  replace(fingerprint: string): Promise<void>;
  /**
   * The store's epoch: `candidate` if none is stored (then written, atomically,
   * with no expiry), else the stored one. Every replica remembers the epoch it
   * first saw; a different one later means the store lost its data (restarted
   * empty, flushed, evicted) and another replica — or this one — started a new epoch.
   */
  epoch(candidate: string): Promise<string>;
}
