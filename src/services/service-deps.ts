import type { Events } from "../events/events-runtime.js";
import type { Authorizer } from "../keys/authorizer.js";
import type { Invalidation } from "../keys/invalidation-bus.js";
import type { KeyImporter } from "../keys/key-import.js";
import type { KeyLookup } from "../keys/key-lookup.js";
import type { KeyManager } from "../keys/key-manager.js";
import type { KeyStore } from "../keys/key-store.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { Endpoint, Policy } from "../policy/policy.js";
import type { RateLimitStore } from "../ratelimit/rate-limit-store.js";
import type { RateLimiter } from "../ratelimit/rate-limiter.js";
import type { Clock } from "../util/clock.js";
import type { Instrument } from "./instrument.js";
import type { ManagementAuth } from "./management-auth.js";
import type { DenialDetail } from "./public-denial.js";

/** What the RPC handlers need; built by main.ts (or a test). */
export interface ServiceDeps {
  authorizer: Authorizer;
  keys: KeyManager;
  /** Key import (restore and migration from other systems). */
  importer: KeyImporter;
  /** This process's pepper fingerprint, hex (see keys/pepper-fingerprint.ts). */
  pepperFingerprint: string;
  /** The key store ExportKeys reads (on Redis, the bulk connection: store/bulk-redis.ts). */
  backupStore: KeyStore;
  lookup: KeyLookup;
  limiter: RateLimiter;
  rateStore: RateLimitStore;
  /** The fail mode of an endpoint (undefined: a request matching none). */
  failMode: (endpoint: Endpoint | undefined) => "open" | "closed";
  /** Fail open: the oldest cached key that may still be used, ms. */
  staleKeyMaxMs: number;
  /** Tells every replica (blocks placed or lifted); never throws, never waits. */
  announce: (message: Invalidation) => void;
  management: ManagementAuth;
  /** Security events, detection, alerts and usage (see src/events). */
  events: Events;
  policy: () => Policy;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  instrument: Instrument;
  /** Log one line per decision. */
  accessLog: boolean;
  /** RotateKey grace period when the request sets none, ms. */
  defaultGraceMs: number;
  /** Environment tag of new secrets when the request sets none. */
  keyEnvironment: string;
  /** What a denied caller is told about a bad key (see public-denial.ts). */
  denialDetail: DenialDetail;
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
