/**
 * The object graph: every domain object, the services' dependencies and the
 * service implementations, built from the settings over a backend. The one
 * place domain objects are created — `main.ts` calls it with the backend the
 * settings name and the system clock, the service-test harness
 * (test/helpers/service-deps.ts) with the embedded backend and a ManualClock,
 * so the tests exercise exactly the wiring that ships.
 *
 * Nothing here listens on a port or starts a background flush: the caller
 * binds the servers and then calls `events.start()`.
 */

import type { NamedToken } from "../config/secret-files.js";
import type { Settings } from "../config/settings.js";
import { DecisionEngine } from "../decision/decision-engine.js";
import { DecisionFeed } from "../decision/decision-feed.js";
import { DecisionObserver } from "../decision/decision-observer.js";
import { createEvents, type Events, eventLimitsFromSettings } from "../events/events-runtime.js";
import { Authorization } from "../gen/envoy/service/auth/v3/external_auth_pb.js";
import { RateLimitQuotaService } from "../gen/envoy/service/rate_limit_quota/v3/rlqs_pb.js";
import { RateLimitService } from "../gen/envoy/service/ratelimit/v3/rls_pb.js";
import { KeyService } from "../gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../gen/tollgate/v1/tollgate_service_pb.js";
import { Authorizer } from "../keys/authorizer.js";
import { ForeignKeyMigrator } from "../keys/foreign-key-migration.js";
import { ForeignKeys } from "../keys/foreign-keys.js";
import type { Invalidation } from "../keys/invalidation-bus.js";
import { KeyCache } from "../keys/key-cache.js";
import { KeyImporter } from "../keys/key-import.js";
import { KeyLookup } from "../keys/key-lookup.js";
import { KeyManager } from "../keys/key-manager.js";
import { pepperFingerprint } from "../keys/pepper-fingerprint.js";
import { createSecretDigester } from "../keys/secret-digest.js";
import type { Logger } from "../observability/logger.js";
import type { MemoryStructure, Metrics } from "../observability/metrics.js";
import type { Tracing } from "../observability/tracing.js";
import { type Endpoint, failModeOf, type Policy } from "../policy/policy.js";
import { PolicyHolder } from "../policy/policy-holder.js";
import { BatchedRateLimitStore } from "../ratelimit/batched-store.js";
import { BlockBook } from "../ratelimit/block-book.js";
import { BlockCache } from "../ratelimit/block-cache.js";
import { OwnerOverrides } from "../ratelimit/owner-overrides.js";
import { RateLimiter } from "../ratelimit/rate-limiter.js";
import { EMPTIED_MESSAGE } from "../resilience/emptied-store-watch.js";
import { InsuranceLimiter } from "../resilience/insurance-limiter.js";
import type { Handlers } from "../services/call-context.js";
import { createEnvoyAuthzService } from "../services/envoy-authz-service.js";
import { createEnvoyRateLimitService } from "../services/envoy-ratelimit-service.js";
import { createForwardAuthHandler } from "../services/forward-auth-handler.js";
import { createInstrument } from "../services/instrument.js";
import { createKeyService } from "../services/key-service.js";
import { ManagementAuth } from "../services/management-auth.js";
import { createRlqsService } from "../services/rlqs-service.js";
import type { ServiceDeps } from "../services/service-deps.js";
import { createTailHandlers } from "../services/tail-handlers.js";
import { createTollgateService } from "../services/tollgate-service.js";
import { bindService, type ServiceBinding } from "../transport/servers.js";
import type { Clock } from "../util/clock.js";
import type { Backend } from "./backend.js";
import { subscribeInvalidations } from "./invalidation-subscriber.js";

/** How often each replica re-reads the registered foreign key prefixes, ms. */
const FOREIGN_PREFIX_REFRESH_MS = 30_000;

/** Options of buildTollgateGraph. */
export interface TollgateGraphOptions {
  settings: Settings;
  /** Every store (createBackend). */
  backend: Backend;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  /** The policy in force at start. */
  policy: Policy;
  /** The file it came from, reloaded on SIGHUP and on change; undefined: nothing to reload. */
  policyFile?: string;
  /** HMAC pepper of key digests. */
  pepper: Buffer;
  /** Management tokens; none: KeyService open to loopback callers (dev mode). */
  managementTokens: readonly NamedToken[];
  /** A span per decision (OpenTelemetry); undefined: off. */
  tracing?: Tracing;
}

/** The built graph. */
export interface TollgateGraph {
  /** What every handler receives. */
  deps: ServiceDeps;
  /** The policy in force (reload, watch, close). */
  policy: PolicyHolder;
  /** Security events, detection, alerts; `start()` once the servers are up. */
  events: Events;
  /** The key cache (its size is a metric). */
  cache: KeyCache;
  /** The implementations of every RPC service. */
  services: {
    tollgate: ReturnType<typeof createTollgateService>;
    keys: Handlers<typeof KeyService>;
    envoyAuthz: ReturnType<typeof createEnvoyAuthzService>;
    envoyRateLimit: ReturnType<typeof createEnvoyRateLimitService>;
    rlqs: ReturnType<typeof createRlqsService>;
  };
  /** The same services, bound for startRpcServers. */
  bindings: ServiceBinding[];
  /** The forward-auth HTTP handler (FORWARD_AUTH_PATH). */
  forwardAuth: ReturnType<typeof createForwardAuthHandler>;
  /** What a store found emptied does: metric, a critical event and an alert. */
  storeEmptied(at: number): void;
  /** Stops the graph's own timers (before the backend closes). */
  close(): Promise<void>;
}

/**
 * Builds the graph and reads the foreign key prefixes once (a failure is
 * logged and retried: Redis may be away at startup).
 */
export async function buildTollgateGraph(o: TollgateGraphOptions): Promise<TollgateGraph> {
  const { settings, backend, clock, log, metrics } = o;
  const cache = new KeyCache({
    clock,
    max: settings.cacheMaxEntries,
    maxBytes: settings.cacheMaxBytes,
    negativeMax: settings.negativeCacheMaxEntries,
    ttlMs: settings.cacheTtlMs,
    negativeTtlMs: settings.negativeCacheTtlMs,
    onEvict: () => metrics.cacheEvictions.inc(),
  });
  metrics.trackMemory("found_keys", () => cache.usage().found);
  metrics.trackMemory("unknown_keys", () => cache.usage().unknown);
  for (const [name, read] of Object.entries(backend.memory)) {
    metrics.trackMemory(name as MemoryStructure, read);
  }
  const policyHolder = new PolicyHolder({
    initial: o.policy,
    log,
    onReload: (result) => metrics.policyReloads.inc({ result }),
    ...(o.policyFile && { file: o.policyFile }),
  });
  const policy = () => policyHolder.get();
  const failMode = (e: Endpoint | undefined) =>
    failModeOf(policyHolder.get(), e, settings.failMode);
  const { bus } = backend;
  const digest = createSecretDigester(o.pepper);
  const lookup = new KeyLookup(backend.keys, cache, clock, (r) =>
    metrics.cacheLookups.inc({ result: r }),
  );
  const invalidateLocal = (digests: string[], ids: string[]) => {
    lookup.invalidate(digests, ids);
    metrics.invalidations.inc({ origin: "local" });
  };
  // Foreign keys: the prefixes imports registered, read now and every
  // FOREIGN_PREFIX_REFRESH_MS (a replica that missed the bus message, or a
  // Redis that was unreachable at startup), on each ready and on each bus message.
  const foreign = new ForeignKeys(backend.prefixes);
  const refreshForeign = () =>
    foreign
      .refresh()
      .catch((err: Error) =>
        log.warn({ err: { message: err.message } }, "foreign key prefixes not read; retrying"),
      );
  await refreshForeign();
  backend.redis?.onReady(() => void refreshForeign());
  const foreignTimer = setInterval(() => void refreshForeign(), FOREIGN_PREFIX_REFRESH_MS);
  foreignTimer.unref();
  const migrator = new ForeignKeyMigrator({
    store: backend.keys,
    digest,
    bus,
    clock,
    invalidateLocal,
    log,
    onMigrated: () => metrics.foreignKeysMigrated.inc(),
  });
  const blockCache = new BlockCache(clock);
  metrics.trackMemory("block_cache", () => blockCache.usage());
  // Tells every replica (blocks placed or lifted); never throws, never waits.
  const announce = (message: Omit<Invalidation, "digests">) => {
    bus
      .publish({ digests: [], ...message })
      .catch((err: Error) => log.warn({ err: { message: err.message } }, "announce failed"));
  };
  const feed = new DecisionFeed();
  const observer = new DecisionObserver({
    metrics,
    log,
    recorder: {
      emit: (e) => events.recorder.emit(e),
      request: (...a) => events.recorder.request(...a),
    },
    policy,
    notifier: {
      charged: (who, r) => events.notifier.charged(who, r),
      keyUsed: (record) => events.notifier.keyUsed(record),
      descriptorsCharged: (items, outcomes, o) =>
        events.notifier.descriptorsCharged(items, outcomes, o),
    },
    accessLog: settings.accessLog,
    accessLogSample: settings.accessLogSample,
    feed,
  });
  const blocks = new BlockBook({
    cache: blockCache,
    store: backend.rates,
    announce,
    listener: observer,
  });
  // The embedded rate-limit store and the insurance limiter share one pair of
  // bounds, each held separately (docs/security-bounds.md).
  const insurance = new InsuranceLimiter(clock, settings.failOpenLimitShare, {
    maxEntries: settings.memoryRateMaxEntries,
    maxBytes: settings.memoryRateMaxBytes,
  });
  metrics.trackMemory("insurance", () => insurance.usage());
  const ownerOverrides = new OwnerOverrides({
    store: backend.overrides,
    clock,
    ttlMs: settings.cacheTtlMs,
    onError: (err) =>
      log.warn({ err: { message: (err as Error).message } }, "owner overrides not read"),
  });
  subscribeInvalidations({
    bus,
    lookup,
    blocks,
    foreign,
    ownerOverrides,
    refreshForeign: () => void refreshForeign(),
    log,
    metrics,
  });
  const eventLimits = eventLimitsFromSettings(settings);
  const events = createEvents({
    stores: backend.events,
    limits: eventLimits,
    blocks,
    policy,
    clock,
    log,
    metrics,
    notify: {
      keys: backend.keys,
      rotationAgeMs: settings.rotationAgeS * 1000,
      sweepIntervalMs: settings.notifySweepIntervalS * 1000,
      sweepPageSize: settings.notifySweepPageSize,
    },
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
  // `sync: batched` limits decide from allotments held here (batched-store.ts).
  // The embedded store is this process's memory already: there they are exact.
  const batched =
    backend.kind === "memory" || !backend.redis
      ? undefined
      : new BatchedRateLimitStore(backend.rates, { clock, storeDown: backend.redis.storeDown });
  if (batched) metrics.trackMemory("allotments", () => batched.usage());
  const engine = new DecisionEngine({
    authorizer,
    storeBudgetMs: settings.redisCommandTimeoutMs,
    limiter: new RateLimiter({
      store: batched ?? backend.rates,
      clock,
      policy,
      blocks,
      failMode,
      insurance,
    }),
    ownerOverrides,
    blocks,
    clock,
    denialDetail: settings.denialDetail,
    observer,
    ...(o.tracing && { tracing: o.tracing }),
  });
  const deps: ServiceDeps = {
    engine,
    observer,
    feed,
    blocks,
    keys: new KeyManager({ store: backend.keys, bus, digest, clock, invalidateLocal, foreign }),
    importer: new KeyImporter({
      store: backend.backupKeys,
      prefixes: backend.backupPrefixes,
      foreign,
      bus,
      clock,
      digest,
      invalidateLocal,
      log,
    }),
    pepperFingerprint: pepperFingerprint(o.pepper),
    backupStore: backend.backupKeys,
    rateStore: backend.rates,
    overrides: {
      store: backend.overrides,
      owners: ownerOverrides,
      async ownerChanged(owner) {
        ownerOverrides.invalidate([owner]);
        metrics.invalidations.inc({ origin: "local" });
        await bus.publish({ digests: [], owners: [owner] });
      },
    },
    events,
    management: new ManagementAuth([...o.managementTokens], {
      maxDelayMs: settings.managementFailureDelayMaxMs,
    }),
    policy,
    clock,
    log,
    metrics,
    instrument: createInstrument(metrics, log),
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
  if (deps.management.open) {
    log.warn(
      "dev mode: no management token configured; KeyService is open to loopback callers only",
    );
  }
  const services = {
    tollgate: createTollgateService(deps),
    // Unary management and the live streams, one service.
    keys: { ...createKeyService(deps), ...createTailHandlers(deps) },
    envoyAuthz: createEnvoyAuthzService(deps),
    envoyRateLimit: createEnvoyRateLimitService(deps),
    // Envoy's rate_limit_quota filter: assignments taken from the store itself
    // (not the batched layer: the assignment is Envoy's allotment).
    rlqs: createRlqsService({
      store: backend.rates,
      policy,
      failMode: () => failMode(undefined),
      log,
    }),
  };
  return {
    deps,
    policy: policyHolder,
    events,
    cache,
    services,
    bindings: [
      bindService(TollgateService, services.tollgate),
      bindService(KeyService, services.keys),
      bindService(Authorization, services.envoyAuthz),
      // Newer Envoys send per-descriptor hits_addend as a field these protos lack.
      bindService(RateLimitService, services.envoyRateLimit, { readUnknownFields: true }),
      bindService(RateLimitQuotaService, services.rlqs, { readUnknownFields: true }),
    ],
    forwardAuth: createForwardAuthHandler(deps),
    storeEmptied(at) {
      metrics.storeEmptied.set(1);
      events.recorder.emit({
        type: "store_emptied",
        subject: "store",
        subjectKind: "caller",
        severity: "critical",
        attributes: { noticed_at: new Date(at).toISOString() },
      });
      void events.dispatcher.raise({
        id: `store-emptied-${at}`,
        rule: "store-emptied",
        severity: "critical",
        subject: "store",
        subjectKind: "caller",
        message: EMPTIED_MESSAGE,
        firedAt: at,
      });
    },
    async close() {
      clearInterval(foreignTimer);
      // Unused allotments go back while the store is still open.
      await batched?.close();
    },
  };
}
