/**
 * ServiceDeps wired like src/main.ts does for the embedded store, but with a
 * ManualClock and a log sink, so service tests drive the real handlers and
 * domain objects through `createRouterTransport` (no network, no mocks).
 */
import { randomBytes } from "node:crypto";
import { createClient, createRouterTransport, type Transport } from "@connectrpc/connect";
import { loadSettings, type Settings } from "../../src/config/settings.js";
import { DecisionEngine } from "../../src/decision/decision-engine.js";
import { DecisionObserver } from "../../src/decision/decision-observer.js";
import {
  createEvents,
  eventLimitsFromSettings,
  memoryEventStores,
} from "../../src/events/events-runtime.js";
import { Authorization } from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { RateLimitService } from "../../src/gen/envoy/service/ratelimit/v3/rls_pb.js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { Authorizer } from "../../src/keys/authorizer.js";
import { ForeignKeyMigrator } from "../../src/keys/foreign-key-migration.js";
import { ForeignKeys } from "../../src/keys/foreign-keys.js";
import type { Invalidation } from "../../src/keys/invalidation-bus.js";
import { KeyCache } from "../../src/keys/key-cache.js";
import { KeyImporter } from "../../src/keys/key-import.js";
import { KeyLookup } from "../../src/keys/key-lookup.js";
import { KeyManager } from "../../src/keys/key-manager.js";
import { pepperFingerprint } from "../../src/keys/pepper-fingerprint.js";
import { createSecretDigester } from "../../src/keys/secret-digest.js";
import { createLogger } from "../../src/observability/logger.js";
import { Metrics } from "../../src/observability/metrics.js";
import { DEFAULT_POLICY_YAML, failModeOf, parsePolicy } from "../../src/policy/policy.js";
import { BlockBook } from "../../src/ratelimit/block-book.js";
import { BlockCache } from "../../src/ratelimit/block-cache.js";
import { RateLimiter } from "../../src/ratelimit/rate-limiter.js";
import { InsuranceLimiter } from "../../src/resilience/insurance-limiter.js";
import { createEnvoyAuthzService } from "../../src/services/envoy-authz-service.js";
import { createEnvoyRateLimitService } from "../../src/services/envoy-ratelimit-service.js";
import { createInstrument } from "../../src/services/instrument.js";
import { createKeyService } from "../../src/services/key-service.js";
import { ManagementAuth } from "../../src/services/management-auth.js";
import type { ServiceDeps } from "../../src/services/service-deps.js";
import { createTollgateService } from "../../src/services/tollgate-service.js";
import { MemoryInvalidationBus } from "../../src/store/invalidation-bus.js";
import { MemoryForeignPrefixStore } from "../../src/store/memory-foreign-prefix-store.js";
import { MemoryKeyStore } from "../../src/store/memory-key-store.js";
import { MemoryRateLimitStore } from "../../src/store/memory-rate-limit-store.js";
import { ManualClock } from "../../src/util/clock.js";

/** Options of createServiceHarness. */
export interface ServiceHarnessOptions {
  /** Management token; empty means open (loopback dev mode). Default: a test token. */
  managementToken?: string;
  /** Policy YAML. Default: the built-in policy. */
  policyYaml?: string;
  /** The pepper. Default: random (harnesses given the same one read each other's digests). */
  pepper?: Buffer;
  /** Settings as environment variables (TOLLGATE_EXPIRY_WARNING_S, …), parsed like `serve` does. */
  env?: Record<string, string>;
}

/** Real handlers over real domain objects and the embedded store. */
export interface ServiceHarness {
  deps: ServiceDeps;
  clock: ManualClock;
  settings: Settings;
  /** Management token configured (empty when open). */
  token: string;
  /** In-memory transport to both services. */
  transport: Transport;
  tollgate: ReturnType<typeof createClient<typeof TollgateService>>;
  keys: ReturnType<typeof createClient<typeof KeyService>>;
  /** Envoy ext_authz (`Check`), through the same transport. */
  envoyAuthz: ReturnType<typeof createClient<typeof Authorization>>;
  /** Envoy global rate limiting (`ShouldRateLimit`), through the same transport. */
  envoyRateLimit: ReturnType<typeof createClient<typeof RateLimitService>>;
  /** Call options carrying the management token. */
  auth: { headers: { authorization: string } };
  /** Every log line written so far (raw JSON text). */
  logText(): string;
  /** Flushes buffers and timers (call in afterEach / afterAll). */
  close(): Promise<void>;
}

/** The token service tests configure unless told otherwise. */
export const TEST_TOKEN = "service-test-management-token";

/** Builds the ServiceDeps main.ts would build for the embedded store, on a ManualClock. */
export async function createServiceHarness(o: ServiceHarnessOptions = {}): Promise<ServiceHarness> {
  const settings = loadSettings({ ...o.env });
  const token = o.managementToken ?? TEST_TOKEN;
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  let log = "";
  const logger = createLogger("trace", {
    write(line: string) {
      log += line;
    },
  });
  const policy = parsePolicy(o.policyYaml ?? DEFAULT_POLICY_YAML, "test policy");
  const metrics = new Metrics(() => 0);
  const cache = new KeyCache({
    max: settings.cacheMaxEntries,
    maxBytes: settings.cacheMaxBytes,
    negativeMax: settings.negativeCacheMaxEntries,
    ttlMs: settings.cacheTtlMs,
    negativeTtlMs: settings.negativeCacheTtlMs,
  });
  const rateBounds = {
    maxEntries: settings.memoryRateMaxEntries,
    maxBytes: settings.memoryRateMaxBytes,
  };
  const store = new MemoryKeyStore(clock);
  const rateStore = new MemoryRateLimitStore(clock, rateBounds);
  const bus = new MemoryInvalidationBus();
  const eventLimits = eventLimitsFromSettings(settings);
  const pepper = o.pepper ?? randomBytes(32);
  const digest = createSecretDigester(pepper);
  const lookup = new KeyLookup(store, cache, clock);
  const invalidateLocal = (d: string[], ids: string[]) => lookup.invalidate(d, ids);
  const prefixStore = new MemoryForeignPrefixStore();
  const foreign = new ForeignKeys(prefixStore);
  const migrator = new ForeignKeyMigrator({
    store,
    digest,
    bus,
    clock,
    invalidateLocal,
    log: logger,
    onMigrated: () => metrics.foreignKeysMigrated.inc(),
  });
  const blockCache = new BlockCache(clock);
  const failMode = (e: Parameters<typeof failModeOf>[1]) =>
    failModeOf(policy, e, settings.failMode);
  const announce = (m: Omit<Invalidation, "digests">) => void bus.publish({ digests: [], ...m });
  const observer = new DecisionObserver({
    metrics,
    log: logger,
    recorder: {
      emit: (e) => events.recorder.emit(e),
      request: (...a) => events.recorder.request(...a),
    },
    policy: () => policy,
    accessLog: settings.accessLog,
  });
  const blocks = new BlockBook({
    cache: blockCache,
    store: rateStore,
    announce,
    listener: observer,
  });
  const events = createEvents({
    stores: memoryEventStores(clock, eventLimits),
    limits: eventLimits,
    blocks,
    policy: () => policy,
    clock,
    log: logger,
    metrics,
  });
  const authorizer = new Authorizer({
    lookup,
    digest,
    clock,
    expiryWarningMs: settings.expiryWarningS * 1000,
    rotationAgeMs: settings.rotationAgeS * 1000,
    failMode,
    staleKeyMaxMs: settings.staleKeyMaxMs,
    foreign: {
      recognises: (secret) => foreign.recognises(secret),
      used: (record, foreignDigest, secret) => migrator.schedule(record.id, foreignDigest, secret),
    },
  });
  const limiter = new RateLimiter({
    store: rateStore,
    clock,
    policy: () => policy,
    blocks,
    failMode,
    insurance: new InsuranceLimiter(clock, settings.failOpenLimitShare, rateBounds),
  });
  const engine = new DecisionEngine({
    authorizer,
    limiter,
    blocks,
    clock,
    denialDetail: settings.denialDetail,
    observer,
  });
  const deps: ServiceDeps = {
    engine,
    observer,
    blocks,
    keys: new KeyManager({ store, bus, digest, clock, invalidateLocal, foreign }),
    importer: new KeyImporter({
      store,
      prefixes: prefixStore,
      foreign,
      bus,
      clock,
      digest,
      invalidateLocal,
      log: logger,
    }),
    pepperFingerprint: pepperFingerprint(pepper),
    backupStore: store,
    rateStore,
    events,
    management: new ManagementAuth(token ? [{ name: "default", token }] : [], {
      maxDelayMs: settings.managementFailureDelayMaxMs,
    }),
    policy: () => policy,
    clock,
    log: logger,
    metrics,
    instrument: createInstrument(metrics, logger),
    defaultGraceMs: settings.defaultGraceS * 1000,
    keyEnvironment: settings.keyEnvironment,
    envoy: {
      keyHeader: settings.envoyKeyHeader,
      removeKeyHeader: settings.envoyRemoveKeyHeader,
      identityHeaders: settings.envoyIdentityHeaders,
      trustedHops: settings.trustedHops,
      maxHeaders: settings.maxHeaders,
      maxHeaderBytes: settings.maxHeaderBytes,
    },
  };
  await events.start();
  const transport = createRouterTransport((router) => {
    router.service(TollgateService, createTollgateService(deps));
    router.service(KeyService, createKeyService(deps));
    router.service(Authorization, createEnvoyAuthzService(deps));
    router.service(RateLimitService, createEnvoyRateLimitService(deps));
  });
  return {
    deps,
    clock,
    settings,
    token,
    transport,
    tollgate: createClient(TollgateService, transport),
    keys: createClient(KeyService, transport),
    envoyAuthz: createClient(Authorization, transport),
    envoyRateLimit: createClient(RateLimitService, transport),
    auth: { headers: { authorization: `Bearer ${token}` } },
    logText: () => log,
    close: () => events.stop(1000),
  };
}
