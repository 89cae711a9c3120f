import type { DecisionEngine } from "../decision/decision-engine.js";
import type { DecisionFeed } from "../decision/decision-feed.js";
import type { DecisionObserver } from "../decision/decision-observer.js";
import type { Events } from "../events/events-runtime.js";
import type { KeyImporter } from "../keys/key-import.js";
import type { KeyManager } from "../keys/key-manager.js";
import type { KeyStore } from "../keys/key-store.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { Policy } from "../policy/policy.js";
import type { BlockBook } from "../ratelimit/block-book.js";
import type { OverrideStore } from "../ratelimit/override-store.js";
import type { OwnerOverrides } from "../ratelimit/owner-overrides.js";
import type { RateLimitStore } from "../ratelimit/rate-limit-store.js";
import type { Clock } from "../util/clock.js";
import type { Instrument } from "./instrument.js";
import type { ManagementAuth } from "./management-auth.js";

/** What the RPC handlers need; built by main.ts (or a test). */
export interface ServiceDeps {
  /** The one decision of Authorize, Check, CheckRateLimit and ShouldRateLimit. */
  engine: DecisionEngine;
  /** Counts and logs decisions (and refusals a door makes itself). */
  observer: DecisionObserver;
  /** The live feed of this replica's decisions (tail, console). */
  feed: DecisionFeed;
  /** Places, lifts and finds blocks (DeleteBlock). */
  blocks: BlockBook;
  keys: KeyManager;
  /** Key import (restore and migration from other systems). */
  importer: KeyImporter;
  /** This process's pepper fingerprint, hex (see keys/pepper-fingerprint.ts). */
  pepperFingerprint: string;
  /** The key store ExportKeys reads (on Redis, the bulk connection: store/bulk-redis.ts). */
  backupStore: KeyStore;
  /** Rate-limit state (ListBlocks). */
  rateStore: RateLimitStore;
  /** Limit overrides (Set/Delete/ListLimitOverrides): owners' store and cache. */
  overrides: {
    store: OverrideStore;
    owners: OwnerOverrides;
    /** Drops an owner's cached overrides here and on every replica (the bus). */
    ownerChanged(owner: string): Promise<void>;
  };
  management: ManagementAuth;
  /** Security events, detection, alerts and usage (see src/events). */
  events: Events;
  policy: () => Policy;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  instrument: Instrument;
  /** RotateKey grace period when the request sets none, ms. */
  defaultGraceMs: number;
  /** Environment tag of new secrets when the request sets none. */
  keyEnvironment: string;
  /** Envoy integration settings. */
  envoy: {
    keyHeader: string;
    removeKeyHeader: boolean;
    identityHeaders: readonly string[];
    trustedHops: number;
    maxHeaders: number;
    maxHeaderBytes: number;
  };
}
