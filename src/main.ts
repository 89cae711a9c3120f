/**
 * The composition root: the only place that builds live objects. It wires
 * settings → logger → stores → domain → services → servers, and owns shutdown.
 */
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import type { DestinationStream } from "pino";
import { listenAddresses, type Settings } from "./config/settings.js";
import { DecisionEngine } from "./decision/decision-engine.js";
import { DecisionObserver } from "./decision/decision-observer.js";
import {
  createEvents,
  type EventStores,
  eventLimitsFromSettings,
  memoryEventStores,
  redisEventStores,
} from "./events/events-runtime.js";
import { Authorization } from "./gen/envoy/service/auth/v3/external_auth_pb.js";
import { RateLimitService } from "./gen/envoy/service/ratelimit/v3/rls_pb.js";
import { KeyService } from "./gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "./gen/tollgate/v1/tollgate_service_pb.js";
import { Authorizer } from "./keys/authorizer.js";
import { ForeignKeyMigrator } from "./keys/foreign-key-migration.js";
import { ForeignKeys } from "./keys/foreign-keys.js";
import { KeyCache } from "./keys/key-cache.js";
import { KeyImporter } from "./keys/key-import.js";
import { KeyLookup } from "./keys/key-lookup.js";
import { KeyManager } from "./keys/key-manager.js";
import { pepperFingerprint } from "./keys/pepper-fingerprint.js";
import { PepperWatch } from "./keys/pepper-watch.js";
import { createSecretDigester } from "./keys/secret-digest.js";
import { createLogger, type Logger } from "./observability/logger.js";
import { Metrics } from "./observability/metrics.js";
import { createTracing } from "./observability/tracing.js";
import {
  DEFAULT_POLICY_YAML,
  type Endpoint,
  failModeOf,
  loadPolicyFile,
  type Policy,
  parsePolicy,
} from "./policy/policy.js";
import { PolicyHolder } from "./policy/policy-holder.js";
import { BlockBook } from "./ratelimit/block-book.js";
import { BlockCache } from "./ratelimit/block-cache.js";
import { RateLimiter } from "./ratelimit/rate-limiter.js";
import { DurabilityWatch } from "./resilience/durability-watch.js";
import { EMPTIED_MESSAGE, EmptiedStoreWatch } from "./resilience/emptied-store-watch.js";
import { InsuranceLimiter } from "./resilience/insurance-limiter.js";
import { StoreGuard } from "./resilience/store-guard.js";
import { createEnvoyAuthzService } from "./services/envoy-authz-service.js";
import { createEnvoyRateLimitService } from "./services/envoy-ratelimit-service.js";
import { createForwardAuthHandler, FORWARD_AUTH_PATH } from "./services/forward-auth-handler.js";
import { createInstrument } from "./services/instrument.js";
import { createKeyService } from "./services/key-service.js";
import { ManagementAuth } from "./services/management-auth.js";
import type { ServiceDeps } from "./services/service-deps.js";
import { createTollgateService } from "./services/tollgate-service.js";
import { BulkRedis } from "./store/bulk-redis.js";
import type { ForeignPrefixStore } from "./store/foreign-prefix-store.js";
import {
  type Invalidation,
  type InvalidationBus,
  MemoryInvalidationBus,
  RedisInvalidationBus,
} from "./store/invalidation-bus.js";
import type { KeyStore } from "./store/key-store.js";
import { MemoryForeignPrefixStore } from "./store/memory-foreign-prefix-store.js";
import { MemoryKeyStore } from "./store/memory-key-store.js";
import { MemoryRateLimitStore } from "./store/memory-rate-limit-store.js";
import type { RateLimitStore } from "./store/rate-limit-store.js";
import { closeRedisClient, createRedisClient } from "./store/redis-client.js";
import { inspectDurability } from "./store/redis-durability.js";
import { RedisForeignPrefixStore } from "./store/redis-foreign-prefix-store.js";
import { RedisKeyStore } from "./store/redis-key-store.js";
import { createKeyNames } from "./store/redis-keys.js";
import { RedisRateLimitStore } from "./store/redis-rate-limit-store.js";
import { RedisStoreMarker } from "./store/redis-store-marker.js";
import { startAdminServer } from "./transport/admin-server.js";
import { createHttpRoutes } from "./transport/http-routes.js";
import { createOpenApiHandler, OPENAPI_PATH } from "./transport/openapi-route.js";
import { type ServiceBinding, startRpcServers } from "./transport/servers.js";
import { transportLimitsFromSettings } from "./transport/transport-limits.js";
import { createTransportObserver } from "./transport/transport-observer.js";
import { buildInfo } from "./util/build-info.js";
import { systemClock } from "./util/clock.js";
import { createDeadline } from "./util/deadline.js";
import { unavailableAddresses } from "./util/port-probe.js";

/** How often each replica re-reads the registered foreign key prefixes, ms. */
const FOREIGN_PREFIX_REFRESH_MS = 30_000;

/** Thrown for a configuration that must not start (names the setting). */
export class StartupError extends Error {
  override name = "StartupError";
}

/** A running Tollgate. */
export interface Tollgate {
  port: number;
  httpPort?: number;
  adminPort: number;
  log: Logger;
  /**
   * Resolves if Tollgate, though started, must not go on serving: a pepper
   * check that could not run at startup (Redis away) or ran again after a
   * reconnect found keys made with another pepper. The caller stops it and
   * exits non-zero with the message. Never resolves otherwise.
   */
  failure: Promise<StartupError>;
  /** Re-reads the policy file (SIGHUP); false if refused or there is no file. */
  reloadPolicy(): Promise<boolean>;
  /**
   * Not ready → drain in-flight calls → flush events → close, all within the
   * shutdown timeout whatever Redis does; resolves, never hangs.
   */
  stop(): Promise<void>;
}

/** Starts Tollgate with validated settings. */
export async function startTollgate(
  settings: Settings,
  logDestination?: DestinationStream,
): Promise<Tollgate> {
  const log = createLogger(settings.logLevel, logDestination);
  const clock = systemClock;
  // Every taken port in one message, each with its setting, before anything starts.
  const taken = await unavailableAddresses(listenAddresses(settings));
  if (taken.length > 0) throw new StartupError(`cannot listen: ${taken.join("; ")}`);
  // Management RPCs are served on the RPC ports only (the admin port has none).
  const rpcLoopbackOnly = [settings.grpcAddr, settings.httpAddr]
    .filter((a) => a !== "")
    .every(isLoopbackAddr);
  const tlsOn = settings.tlsCertFile !== "" || settings.tlsKeyFile !== "";
  if (tlsOn && (settings.tlsCertFile === "" || settings.tlsKeyFile === "")) {
    throw new StartupError("TOLLGATE_TLS_CERT_FILE and TOLLGATE_TLS_KEY_FILE must be set together");
  }
  if (settings.tlsClientCaFile !== "" && !tlsOn) {
    throw new StartupError(
      "TOLLGATE_TLS_CLIENT_CA_FILE needs TOLLGATE_TLS_CERT_FILE and TOLLGATE_TLS_KEY_FILE",
    );
  }
  if (!rpcLoopbackOnly && !tlsOn) {
    if (!settings.allowPlaintext) {
      throw new StartupError(
        "TOLLGATE_TLS_CERT_FILE / TOLLGATE_TLS_KEY_FILE are required when an RPC port is bound to a non-loopback address (or set TOLLGATE_ALLOW_PLAINTEXT=true)",
      );
    }
    log.warn("an RPC port is reachable off this host without TLS (TOLLGATE_ALLOW_PLAINTEXT=true)");
  }
  const managementToken = settings.managementTokenFile
    ? readSecretFile(settings.managementTokenFile, "TOLLGATE_MANAGEMENT_TOKEN_FILE")
    : settings.managementToken;
  const namedTokens = settings.managementTokensFile
    ? readTokensFile(settings.managementTokensFile)
    : [];
  if (managementToken === "" && namedTokens.length === 0 && !rpcLoopbackOnly) {
    throw new StartupError(
      "TOLLGATE_MANAGEMENT_TOKEN (or _FILE) is required when any listener is bound to a non-loopback address",
    );
  }
  if (managementToken !== "" && Buffer.byteLength(managementToken) < 16) {
    throw new StartupError("TOLLGATE_MANAGEMENT_TOKEN_FILE: the token must be at least 16 bytes");
  }
  let pepper = settings.pepperFile
    ? Buffer.from(readSecretFile(settings.pepperFile, "TOLLGATE_PEPPER_FILE"))
    : Buffer.from(settings.pepper);
  const usingRedis = settings.redisUrl !== "" || settings.redisMode !== "standalone";
  if (settings.redisMode === "sentinel" && settings.redisSentinels === "") {
    throw new StartupError(
      "TOLLGATE_REDIS_SENTINELS is required with TOLLGATE_REDIS_MODE=sentinel",
    );
  }
  if (
    settings.redisMode === "cluster" &&
    settings.redisUrl === "" &&
    settings.redisClusterNodes === ""
  ) {
    throw new StartupError(
      "REDIS_URL or TOLLGATE_REDIS_CLUSTER_NODES is required with TOLLGATE_REDIS_MODE=cluster",
    );
  }
  if (pepper.length === 0) {
    if (usingRedis) {
      throw new StartupError(
        "TOLLGATE_PEPPER (or _FILE) is required with REDIS_URL: every replica must share it",
      );
    }
    pepper = randomBytes(32);
    log.warn(
      "no pepper configured: using a random one; keys last as long as this process (embedded store)",
    );
  }
  if (pepper.length < 16)
    throw new StartupError("TOLLGATE_PEPPER_FILE: the pepper must be at least 16 bytes");

  const initialPolicy: Policy = settings.policyFile
    ? await loadPolicyFile(settings.policyFile, "TOLLGATE_POLICY_FILE")
    : parsePolicy(DEFAULT_POLICY_YAML, "built-in policy");

  const cache = new KeyCache({
    max: settings.cacheMaxEntries,
    maxBytes: settings.cacheMaxBytes,
    negativeMax: settings.negativeCacheMaxEntries,
    ttlMs: settings.cacheTtlMs,
    negativeTtlMs: settings.negativeCacheTtlMs,
    onEvict: () => metrics.cacheEvictions.inc(),
  });
  const metrics = new Metrics(() => cache.size);
  // Memory bounds (docs/security-bounds.md): the embedded rate-limit store and
  // the insurance limiter share one pair of bounds, each held separately.
  const rateBounds = {
    maxEntries: settings.memoryRateMaxEntries,
    maxBytes: settings.memoryRateMaxBytes,
  };
  metrics.trackMemory("found_keys", () => cache.usage().found);
  metrics.trackMemory("unknown_keys", () => cache.usage().unknown);

  const policyHolder = new PolicyHolder({
    initial: initialPolicy,
    log,
    onReload: (result) => metrics.policyReloads.inc({ result }),
    ...(settings.policyFile && { file: settings.policyFile }),
  });
  const policy = () => policyHolder.get();
  const failMode = (e: Endpoint | undefined) =>
    failModeOf(policyHolder.get(), e, settings.failMode);
  let store: KeyStore;
  let prefixStore: ForeignPrefixStore;
  // Export and import: on Redis, a connection and breaker of their own (bulk-redis.ts).
  let backupStore: KeyStore;
  let backupPrefixes: ForeignPrefixStore;
  let rateStore: RateLimitStore;
  let bus: InvalidationBus;
  let eventStores: EventStores;
  const eventLimits = eventLimitsFromSettings(settings);
  /** Run last at shutdown, in order, each given the milliseconds left. */
  const closers: ((waitMs: number) => Promise<unknown>)[] = [];
  // Traces are off unless an OTLP endpoint is set; then spans are flushed at shutdown.
  const tracing = settings.otlpTracesUrl
    ? createTracing({
        url: settings.otlpTracesUrl,
        sampleRatio: settings.traceSampleRatio,
        serviceVersion: buildInfo().version,
      })
    : undefined;
  if (tracing) closers.push(() => tracing.shutdown());
  let guard: StoreGuard | undefined;
  let emptiedWatch: EmptiedStoreWatch | undefined;
  // Set once the events subsystem exists (the watch starts before it).
  let onStoreEmptied: (at: number) => void = () => metrics.storeEmptied.set(1);
  // Set once the foreign key prefixes exist (Redis connects before them).
  let onStoreReady: () => void = () => {};
  let fail: (err: StartupError) => void = () => {};
  const failure = new Promise<StartupError>((r) => {
    fail = r;
  });
  // No pepper check on the embedded store: its pepper may be random per
  // process, and its keys die with the process anyway.
  if (!usingRedis) {
    store = new MemoryKeyStore(clock);
    prefixStore = new MemoryForeignPrefixStore();
    backupStore = store;
    backupPrefixes = prefixStore;
    const memoryRates = new MemoryRateLimitStore(clock, rateBounds);
    metrics.trackMemory("ratelimit", () => memoryRates.usage());
    rateStore = memoryRates;
    bus = new MemoryInvalidationBus();
    eventStores = memoryEventStores(clock, eventLimits);
    for (const [name, read] of Object.entries(eventStores.memory ?? {})) {
      metrics.trackMemory(name as keyof NonNullable<EventStores["memory"]>, read);
    }
    log.info("store: embedded in-memory (single replica; state is lost on exit)");
  } else {
    let lastError = "";
    const redis = createRedisClient({
      mode: settings.redisMode,
      url:
        settings.redisUrl ||
        `redis://${settings.redisClusterNodes.split(",")[0] || "127.0.0.1:6379"}`,
      sentinels: settings.redisSentinels,
      sentinelMaster: settings.redisSentinelMaster,
      sentinelPassword: settings.redisSentinelPassword,
      clusterNodes: settings.redisClusterNodes,
      commandTimeoutMs: settings.redisCommandTimeoutMs,
      connectTimeoutMs: settings.redisConnectTimeoutMs,
      onError: (err) => {
        // ioredis repeats errors on every reconnect attempt; log each kind once.
        if (err.message !== lastError)
          log.error({ err: { message: err.message } }, "redis connection error");
        lastError = err.message;
      },
    });
    redis.on("ready", () => {
      lastError = "";
      log.info({ mode: settings.redisMode }, "redis ready");
    });
    const names = createKeyNames(settings.redisPrefix);
    // The decision path's breaker: key, rate-limit and block calls go through it.
    guard = new StoreGuard({
      name: "redis",
      timeoutMs: settings.breakerTimeoutMs,
      errorThresholdPercentage: settings.breakerErrorPercent,
      volumeThreshold: settings.breakerVolume,
      resetTimeoutMs: settings.breakerResetMs,
      breaker: settings.redisMode !== "cluster",
      log,
      metrics,
      ...(tracing && { tracing }),
    });
    // The events subsystem's background writes get a breaker of their own on
    // the same connection: their failures (e.g. Redis out of memory) must
    // never open the decision path's breaker.
    const eventsGuard = new StoreGuard({
      name: "redis-events",
      timeoutMs: settings.breakerTimeoutMs,
      errorThresholdPercentage: settings.breakerErrorPercent,
      volumeThreshold: settings.breakerVolume,
      resetTimeoutMs: settings.breakerResetMs,
      breaker: settings.redisMode !== "cluster",
      log,
      metrics,
    });
    store = guard.wrap("keys", new RedisKeyStore(redis, names));
    prefixStore = guard.wrap("foreign_prefixes", new RedisForeignPrefixStore(redis, names));
    const bulk = new BulkRedis(redis, names, settings.redisBulkTimeoutMs);
    const bulkGuard = new StoreGuard({
      name: "redis_bulk",
      timeoutMs: settings.redisBulkTimeoutMs,
      errorThresholdPercentage: settings.breakerErrorPercent,
      volumeThreshold: settings.breakerVolume,
      resetTimeoutMs: settings.breakerResetMs,
      breaker: settings.redisMode !== "cluster",
      log,
      metrics,
    });
    backupStore = bulkGuard.wrap("bulk_keys", bulk.keyStore());
    backupPrefixes = bulkGuard.wrap("bulk_foreign_prefixes", bulk.prefixStore());
    closers.push(async (waitMs) => {
      bulkGuard.shutdown();
      await bulk.close(waitMs);
    });
    rateStore = guard.wrap("ratelimit", new RedisRateLimitStore(redis, names));
    eventStores = redisEventStores(redis, settings.redisPrefix, eventsGuard, eventLimits);
    bus = new RedisInvalidationBus(redis, names.invalidationChannel(), () =>
      log.warn("ignored a malformed invalidation message"),
    );
    const marker = new RedisStoreMarker(redis, names);
    const pepperWatch = new PepperWatch({
      marker,
      keys: store,
      fingerprint: pepperFingerprint(pepper),
      acceptNew: settings.acceptNewPepper,
      connected: () => redis.status === "ready",
      log,
      onMismatch: (message) => fail(new StartupError(message)),
    });
    // On every ready: the first (awaited below), a Redis that was down at
    // startup appearing, and each reconnect (a Redis restarted empty).
    redis.on("ready", () => void pepperWatch.verify());
    // Can this Redis lose the keys? (eviction policy, persistence), and did it?
    const durability = new DurabilityWatch({
      inspect: () => inspectDurability(redis),
      allowEvicting: settings.allowEvictingRedis,
      log,
      setDurable: (v) => metrics.storeDurable.set(v),
    });
    emptiedWatch = new EmptiedStoreWatch({
      marker,
      clock,
      log,
      intervalMs: settings.storeCheckIntervalMs,
      onEmptied: (at) => onStoreEmptied(at),
    });
    const emptied = emptiedWatch;
    redis.on("ready", () => {
      void durability.check();
      void emptied.check();
      onStoreReady();
    });
    durability.start();
    emptied.start();
    const g = guard;
    closers.push(async (waitMs) => {
      durability.close();
      emptied.close();
      pepperWatch.close();
      g.shutdown();
      eventsGuard.shutdown();
      await closeRedisClient(redis, waitMs);
    });
    log.info({ mode: settings.redisMode }, "store: redis");
    // Report ready only once Redis answers — or after the connect timeout, so a
    // Redis outage at startup cannot keep the pod out of service (fail modes apply).
    const connected = await Promise.race([
      // once() rejects on the client's first "error" (e.g. connection refused).
      once(redis, "ready").then(
        () => true,
        () => false,
      ),
      new Promise<boolean>((r) =>
        setTimeout(() => r(false), settings.redisConnectTimeoutMs).unref(),
      ),
    ]);
    if (!connected) log.warn("redis not reachable at startup: serving by fail mode until it is");
    // A pepper the keys were not made with refuses to start. Without Redis
    // the check waits for its "ready"; one slower than the connect timeout
    // goes on in the background. Either way a mismatch then is `failure`.
    const refusal = connected
      ? await pepperWatch.refusalAtStartup(settings.redisConnectTimeoutMs)
      : undefined;
    const evicting = connected && !refusal ? await durability.check() : undefined;
    if (refusal || evicting) {
      redis.disconnect();
      throw new StartupError((refusal ?? evicting) as string);
    }
  }

  const digest = createSecretDigester(pepper);
  const lookup = new KeyLookup(store, cache, clock, (r) => metrics.cacheLookups.inc({ result: r }));
  const invalidateLocal = (digests: string[], ids: string[]) => {
    lookup.invalidate(digests, ids);
    metrics.invalidations.inc({ origin: "local" });
  };
  // Foreign keys: the prefixes imports registered, read now and every
  // FOREIGN_PREFIX_REFRESH_MS (a replica that missed the bus message, or a
  // Redis that was unreachable at startup), and on each bus message.
  const foreign = new ForeignKeys(prefixStore);
  const refreshForeign = () =>
    foreign
      .refresh()
      .catch((err: Error) =>
        log.warn({ err: { message: err.message } }, "foreign key prefixes not read; retrying"),
      );
  await refreshForeign();
  onStoreReady = () => void refreshForeign();
  const foreignTimer = setInterval(() => void refreshForeign(), FOREIGN_PREFIX_REFRESH_MS);
  foreignTimer.unref();
  closers.unshift(async () => clearInterval(foreignTimer));
  const migrator = new ForeignKeyMigrator({
    store,
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
  const observer = new DecisionObserver({
    metrics,
    log,
    recorder: {
      emit: (e) => events.recorder.emit(e),
      request: (...a) => events.recorder.request(...a),
    },
    policy,
    accessLog: settings.accessLog,
  });
  const blocks = new BlockBook({
    cache: blockCache,
    store: rateStore,
    announce,
    listener: observer,
  });
  const insurance = new InsuranceLimiter(clock, settings.failOpenLimitShare, rateBounds);
  metrics.trackMemory("insurance", () => insurance.usage());
  // Not awaited: with Redis unreachable at startup the subscription waits for
  // it while Tollgate serves by fail mode. Lost messages are bounded by the
  // cache TTL; after a reconnect the cache is dropped so nothing missed lingers.
  void bus
    .subscribe(
      (m) => {
        lookup.invalidate(m.digests, m.ids);
        blocks.apply(m);
        if (m.prefixes?.length) foreign.add(m.prefixes);
        metrics.invalidations.inc({ origin: "remote" });
      },
      () => {
        // Messages sent while disconnected are lost: every cached lookup must be
        // re-read, but stays available as the stale copy fail-open relies on.
        lookup.expireAll();
        void refreshForeign();
        log.warn("invalidation channel re-subscribed: every cached key will be re-read");
      },
    )
    .catch((err: Error) =>
      log.error({ err: { message: err.message } }, "invalidation subscribe failed"),
    );
  closers.unshift(() => bus.close());
  const events = createEvents({
    stores: eventStores,
    limits: eventLimits,
    blocks,
    policy,
    clock,
    log,
    metrics,
  });
  onStoreEmptied = (at) => {
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
  };
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
  const engine = new DecisionEngine({
    authorizer,
    limiter: new RateLimiter({ store: rateStore, clock, policy, blocks, failMode, insurance }),
    blocks,
    clock,
    denialDetail: settings.denialDetail,
    observer,
    ...(tracing && { tracing }),
  });
  const deps: ServiceDeps = {
    engine,
    observer,
    blocks,
    keys: new KeyManager({ store, bus, digest, clock, invalidateLocal, foreign }),
    importer: new KeyImporter({
      store: backupStore,
      prefixes: backupPrefixes,
      foreign,
      bus,
      clock,
      digest,
      invalidateLocal,
      log,
    }),
    pepperFingerprint: pepperFingerprint(pepper),
    backupStore,
    rateStore,
    events,
    management: new ManagementAuth(
      [...(managementToken ? [{ name: "default", token: managementToken }] : []), ...namedTokens],
      { maxDelayMs: settings.managementFailureDelayMaxMs },
    ),
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

  const services: ServiceBinding[] = [
    { desc: TollgateService, impl: createTollgateService(deps) } as unknown as ServiceBinding,
    { desc: KeyService, impl: createKeyService(deps) } as unknown as ServiceBinding,
    { desc: Authorization, impl: createEnvoyAuthzService(deps) } as unknown as ServiceBinding,
    // Newer Envoys send per-descriptor hits_addend as a field these protos lack.
    {
      desc: RateLimitService,
      impl: createEnvoyRateLimitService(deps),
      readUnknownFields: true,
    } as unknown as ServiceBinding,
  ];
  let ready = false;
  const rpc = await bindOrExplain(
    startRpcServers({
      services,
      addr: settings.grpcAddr,
      httpAddr: settings.httpAddr,
      maxMessageBytes: settings.maxMessageBytes,
      corsOrigins: settings.corsOrigins,
      httpRoutes: createHttpRoutes({
        routes: {
          [FORWARD_AUTH_PATH]: createForwardAuthHandler(deps),
          [OPENAPI_PATH]: createOpenApiHandler(),
        },
        onError: (err) =>
          log.error({ err: { message: (err as Error)?.message } }, "forward-auth failed"),
      }),
      limits: transportLimitsFromSettings(settings),
      observer: createTransportObserver(metrics, log),
      ...(tlsOn && {
        tls: {
          certFile: settings.tlsCertFile,
          keyFile: settings.tlsKeyFile,
          clientCaFile: settings.tlsClientCaFile,
        },
      }),
      onTlsReload: () => log.info("TLS certificates reloaded"),
      onTlsReloadError: (err) =>
        log.error(
          { err: { message: err.message } },
          "TLS certificate reload refused; the previous certificates stay",
        ),
    }),
    "TOLLGATE_ADDR or TOLLGATE_HTTP_ADDR",
  );
  const admin = await bindOrExplain(
    startAdminServer({
      addr: settings.adminAddr,
      registry: metrics.registry,
      live: () => true,
      ready: () => ready,
      // Readiness stays up: every replica shares the store, so failing it
      // would turn lost keys into a full outage; the body says what happened.
      readyNotes: () =>
        emptiedWatch?.emptiedAt === undefined
          ? []
          : [`store: emptied (noticed ${new Date(emptiedWatch.emptiedAt).toISOString()})`],
    }),
    "TOLLGATE_ADMIN_ADDR",
  );
  policyHolder.watch();
  await events.start();
  ready = true;
  rpc.setServing(true);
  metrics.ready.set(1);
  const build = buildInfo();
  metrics.buildInfo.set({ version: build.version, commit: build.commit, node: build.node }, 1);
  log.info(
    {
      port: rpc.port,
      httpPort: rpc.httpPort,
      adminPort: admin.port,
      policy: initialPolicy.source,
      version: build.version,
      commit: build.commit,
    },
    "tollgate serving",
  );

  let stopping: Promise<void> | undefined;
  return {
    port: rpc.port,
    ...(rpc.httpPort !== undefined && { httpPort: rpc.httpPort }),
    adminPort: admin.port,
    log,
    failure,
    reloadPolicy: () => policyHolder.reload(),
    stop() {
      stopping ??= (async () => {
        // One deadline for every step: each gets what the previous ones left.
        const timeoutMs = settings.shutdownTimeoutMs;
        const deadline = createDeadline(timeoutMs);
        ready = false;
        metrics.ready.set(0);
        rpc.setServing(false);
        log.info("shutting down: not ready, draining in-flight calls");
        policyHolder.close();
        // Calls may take all but the last tenth (at most 0.5 s), which is kept
        // for writing the events they buffered.
        await rpc.close(Math.max(0, deadline.remaining() - Math.min(500, timeoutMs / 10)));
        // Buffered events are written and webhook queues drained before Redis
        // closes; what cannot be written in time is counted as lost.
        await events.stop(deadline.remaining());
        const adminClosed = new Promise<void>((r) => admin.server.close(() => r()));
        admin.server.closeAllConnections();
        await adminClosed;
        // Past the deadline Redis connections are dropped, not quit politely.
        for (const c of closers) await c(deadline.remaining());
        log.info("stopped");
      })();
      return stopping;
    },
  };
}

/** Turns a bind failure (port taken, address unavailable) into a StartupError naming the setting. */
async function bindOrExplain<T>(p: Promise<T>, settingNames: string): Promise<T> {
  try {
    return await p;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "EADDRINUSE" || e.code === "EADDRNOTAVAIL" || e.code === "EACCES") {
      throw new StartupError(
        `${settingNames}: cannot listen (${e.code}${e.message.includes(":") ? ` ${e.message.split(" ").pop()}` : ""})`,
      );
    }
    throw err;
  }
}

function isLoopbackAddr(addr: string): boolean {
  const host = addr.slice(0, addr.lastIndexOf(":")).replace(/^\[(.*)\]$/, "$1");
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  if (isIP(host) === 6) return host === "::1";
  return false;
}

/**
 * Reads `name:token` lines (blank lines and `#` comments ignored). Names
 * attribute actions in audit logs; tokens must be at least 16 bytes.
 */
function readTokensFile(path: string): { name: string; token: string }[] {
  const text = readSecretFile(path, "TOLLGATE_MANAGEMENT_TOKENS_FILE");
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l, i) => {
      const sep = l.indexOf(":");
      const name = l.slice(0, sep);
      const token = l.slice(sep + 1);
      if (sep <= 0 || !/^[A-Za-z0-9._-]{1,64}$/.test(name) || Buffer.byteLength(token) < 16) {
        // Never echo the line: it holds a token.
        throw new StartupError(
          `TOLLGATE_MANAGEMENT_TOKENS_FILE: entry ${i + 1} must be name:token with a 1..64 char name of [A-Za-z0-9._-] and a token of at least 16 bytes`,
        );
      }
      return { name, token };
    });
}

function readSecretFile(path: string, setting: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch (err) {
    throw new StartupError(
      `${setting}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
}
