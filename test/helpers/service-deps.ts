/**
 * The object graph main.ts builds (src/app/tollgate-graph.ts), over the
 * embedded backend, with a ManualClock and a log sink, so service tests drive
 * the real handlers and domain objects through `createRouterTransport` (no
 * network, no mocks) wired exactly as they ship.
 */
import { randomBytes } from "node:crypto";
import { createClient, createRouterTransport, type Transport } from "@connectrpc/connect";
import { memoryBackend } from "../../src/app/backend.js";
import { buildTollgateGraph } from "../../src/app/tollgate-graph.js";
import { loadSettings, type Settings } from "../../src/config/settings.js";
import { eventLimitsFromSettings } from "../../src/events/events-runtime.js";
import { Authorization } from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { RateLimitQuotaService } from "../../src/gen/envoy/service/rate_limit_quota/v3/rlqs_pb.js";
import { RateLimitService } from "../../src/gen/envoy/service/ratelimit/v3/rls_pb.js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { createLogger } from "../../src/observability/logger.js";
import { Metrics } from "../../src/observability/metrics.js";
import { DEFAULT_POLICY_YAML, parsePolicy } from "../../src/policy/policy.js";
import type { ServiceDeps } from "../../src/services/service-deps.js";
import { ManualClock } from "../../src/util/clock.js";

/** Options of createServiceHarness. */
export interface ServiceHarnessOptions {
  /** Management token; empty means open (loopback dev mode). Default: a test token. */
  managementToken?: string;
  /** Policy YAML. Default: the built-in policy. */
  policyYaml?: string;
  /** The pepper. Default: random (harnesses given the same one read each other's digests). */
  pepper?: Buffer;
  /** More named tokens (e.g. a read-only one) beside `managementToken`. */
  extraTokens?: { name: string; token: string; readOnly?: boolean }[];
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
  /** In-memory transport to the services. */
  transport: Transport;
  tollgate: ReturnType<typeof createClient<typeof TollgateService>>;
  keys: ReturnType<typeof createClient<typeof KeyService>>;
  /** Envoy ext_authz (`Check`), through the same transport. */
  envoyAuthz: ReturnType<typeof createClient<typeof Authorization>>;
  /** Envoy global rate limiting (`ShouldRateLimit`), through the same transport. */
  envoyRateLimit: ReturnType<typeof createClient<typeof RateLimitService>>;
  /** Envoy's rate limit quota service (`StreamRateLimitQuotas`), through the same transport. */
  rlqs: ReturnType<typeof createClient<typeof RateLimitQuotaService>>;
  /** Call options carrying the management token. */
  auth: { headers: { authorization: string } };
  /** Every log line written so far (raw JSON text). */
  logText(): string;
  /** Flushes buffers and timers (call in afterEach / afterAll). */
  close(): Promise<void>;
}

/** The token service tests configure unless told otherwise. */
export const TEST_TOKEN = "service-test-management-token";

/** Builds the graph main.ts builds, over the embedded store, on a ManualClock. */
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
  // The cache gauge is read at scrape time, once the graph exists.
  const metrics = new Metrics(() => graph.cache.size);
  const backend = memoryBackend(settings, {
    clock,
    log: logger,
    metrics,
    eventLimits: eventLimitsFromSettings(settings),
  });
  const graph = await buildTollgateGraph({
    settings,
    backend,
    clock,
    log: logger,
    metrics,
    policy: parsePolicy(o.policyYaml ?? DEFAULT_POLICY_YAML, "test policy"),
    pepper: o.pepper ?? randomBytes(32),
    managementTokens: [...(token ? [{ name: "default", token }] : []), ...(o.extraTokens ?? [])],
  });
  await graph.events.start();
  const transport = createRouterTransport((router) => {
    router.service(TollgateService, graph.services.tollgate);
    router.service(KeyService, graph.services.keys);
    router.service(Authorization, graph.services.envoyAuthz);
    router.service(RateLimitService, graph.services.envoyRateLimit);
    router.service(RateLimitQuotaService, graph.services.rlqs);
  });
  return {
    deps: graph.deps,
    clock,
    settings,
    token,
    transport,
    tollgate: createClient(TollgateService, transport),
    keys: createClient(KeyService, transport),
    envoyAuthz: createClient(Authorization, transport),
    envoyRateLimit: createClient(RateLimitService, transport),
    rlqs: createClient(RateLimitQuotaService, transport),
    auth: { headers: { authorization: `Bearer ${token}` } },
    logText: () => log,
    async close() {
      // As main's stop, without servers: flush events, stop timers, close the store.
      await graph.events.stop(1000);
      await graph.close();
      await backend.close(1000);
    },
  };
}
