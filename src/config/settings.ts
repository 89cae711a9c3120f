/**
 * Every setting of Tollgate, in one table: name, environment variable, default,
 * description and validation. `tollgate --help`, the README's table
 * (`tollgate settings --markdown`) and startup validation all read this table.
 */
import { z } from "zod";

interface SettingSpec<T> {
  env: string;
  default: string;
  description: string;
  schema: z.ZodType<T>;
  /** Secret-bearing: never printed. */
  secret?: boolean;
}

const addr = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, "must be host:port (IPv6 in brackets)")
  .refine((s) => Number(s.slice(s.lastIndexOf(":") + 1)) <= 65535, "port must be 0..65535");
const optionalAddr = z.union([z.literal(""), addr]);
/** A comma-separated list, trimmed, empty items dropped, each item checked by `item`. */
const csvOf = <T>(items: z.ZodType<T[], string[]>) =>
  z
    .string()
    .transform((s) =>
      s
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean),
    )
    .pipe(items);
/** A whole number in [min, max]; anything else (e.g. `5s`) is named as such, never "NaN". */
const int = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^-?\d+$/, "must be a whole number")
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));
const BYTE_UNITS: Record<string, number> = { "": 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };
/** A size in bytes: an integer, optionally with a KiB, MiB or GiB suffix (`32MiB`). */
const bytes = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+(KiB|MiB|GiB)?$/, "must be bytes: an integer, optionally with KiB, MiB or GiB")
    .transform((v) => Number(/^\d+/.exec(v)?.[0]) * (BYTE_UNITS[v.replace(/^\d+/, "")] ?? 1))
    .pipe(z.number().int().min(min).max(max));
const redisUrl = z.union([
  z.literal(""),
  z.string().regex(/^rediss?:\/\/[^\s]+$/, "must be a redis:// or rediss:// URL"),
]);

function spec<T>(s: SettingSpec<T>): SettingSpec<T> {
  return s;
}

/** The settings table. Keys are the names used in code. */
export const SETTINGS = {
  grpcAddr: spec({
    env: "TOLLGATE_ADDR",
    default: "127.0.0.1:50051",
    description:
      "Main port: gRPC over HTTP/2 (grpc-js, the fast path) and Connect / gRPC-Web over HTTP/1.1 on one socket.",
    schema: addr,
  }),
  httpAddr: spec({
    env: "TOLLGATE_HTTP_ADDR",
    default: "127.0.0.1:8080",
    description:
      "Connect, gRPC-Web and gRPC over h2c and HTTP/1.1 (connect-node), for browsers and Connect clients on HTTP/2. Empty disables it.",
    schema: optionalAddr,
  }),
  adminAddr: spec({
    env: "TOLLGATE_ADMIN_ADDR",
    default: "127.0.0.1:9464",
    description: "Admin HTTP port: /metrics, /healthz, /readyz.",
    schema: addr,
  }),
  redisUrl: spec({
    env: "REDIS_URL",
    default: "",
    description:
      "Redis URL (redis:// or rediss:// for TLS, with user:password). Empty runs on the embedded in-memory store.",
    schema: redisUrl,
    secret: true,
  }),
  redisMode: spec({
    env: "TOLLGATE_REDIS_MODE",
    default: "standalone",
    description:
      "standalone (REDIS_URL), sentinel (TOLLGATE_REDIS_SENTINELS + TOLLGATE_REDIS_SENTINEL_MASTER; REDIS_URL gives auth/TLS/db) or cluster (REDIS_URL is a seed; TOLLGATE_REDIS_CLUSTER_NODES adds seeds).",
    schema: z.enum(["standalone", "sentinel", "cluster"]),
  }),
  redisSentinels: spec({
    env: "TOLLGATE_REDIS_SENTINELS",
    default: "",
    description: "Sentinel mode: comma-separated host:port of the sentinels.",
    schema: z
      .string()
      .regex(
        /^([A-Za-z0-9.:[\]-]+:\d{1,5})?(,[A-Za-z0-9.:[\]-]+:\d{1,5})*$/,
        "must be host:port,host:port",
      ),
  }),
  redisSentinelMaster: spec({
    env: "TOLLGATE_REDIS_SENTINEL_MASTER",
    default: "mymaster",
    description: "Sentinel mode: the monitored master's name.",
    schema: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, "must be 1..64 of [A-Za-z0-9._-]"),
  }),
  redisSentinelPassword: spec({
    env: "TOLLGATE_REDIS_SENTINEL_PASSWORD",
    default: "",
    description: "Sentinel mode: password of the sentinels themselves (if they require one).",
    schema: z.string().max(512),
    secret: true,
  }),
  redisClusterNodes: spec({
    env: "TOLLGATE_REDIS_CLUSTER_NODES",
    default: "",
    description: "Cluster mode: extra comma-separated host:port seeds besides REDIS_URL.",
    schema: z
      .string()
      .regex(
        /^([A-Za-z0-9.:[\]-]+:\d{1,5})?(,[A-Za-z0-9.:[\]-]+:\d{1,5})*$/,
        "must be host:port,host:port",
      ),
  }),
  redisCommandTimeoutMs: spec({
    env: "TOLLGATE_REDIS_COMMAND_TIMEOUT_MS",
    default: "250",
    description:
      "Budget of each Redis command of a decision when the caller sends no shorter deadline (gRPC grpc-timeout, Connect connect-timeout-ms; Envoy sends its 200 ms ext_authz and 20 ms rate-limit budgets): the caller's deadline less a margin bounds the call when it is shorter. Generous on purpose, so that it measures Redis, not the queue inside a busy process; a call past it is a store failure (fail mode applies). Redis health is judged by a ping (TOLLGATE_REDIS_PING_INTERVAL_MS).",
    schema: int(1, 60_000),
  }),
  redisBulkTimeoutMs: spec({
    env: "TOLLGATE_REDIS_BULK_TIMEOUT_MS",
    default: "5000",
    description:
      "Timeout of each store call of key export and import (ExportKeys, ImportKeys). They run on a Redis connection and circuit breaker of their own, made on first use, so bulk work never trips the timeouts or the breaker of decisions.",
    schema: int(100, 600_000),
  }),
  redisConnectTimeoutMs: spec({
    env: "TOLLGATE_REDIS_CONNECT_TIMEOUT_MS",
    default: "1000",
    description: "Redis connect timeout; reconnects back off exponentially up to 2 s.",
    schema: int(10, 60_000),
  }),
  breakerTimeoutMs: spec({
    env: "TOLLGATE_BREAKER_TIMEOUT_MS",
    default: "250",
    description:
      "Redis health: a ping not answered within this (or within TOLLGATE_REDIS_COMMAND_TIMEOUT_MS, if shorter) marks Redis unhealthy: the breaker opens and decision calls fail fast by their fail mode until a ping is answered again. Slow decision calls never open the breaker by their slowness alone.",
    schema: int(1, 60_000),
  }),
  redisPingIntervalMs: spec({
    env: "TOLLGATE_REDIS_PING_INTERVAL_MS",
    default: "500",
    description:
      "Redis health: how often the decision connection is pinged (standalone and Sentinel; on Cluster each command's budget bounds a dead slot instead).",
    schema: int(50, 60_000),
  }),
  breakerErrorPercent: spec({
    env: "TOLLGATE_BREAKER_ERROR_PERCENT",
    default: "50",
    description: "Circuit breaker: opens when this share of calls in the rolling window fails.",
    schema: int(1, 100),
  }),
  breakerVolume: spec({
    env: "TOLLGATE_BREAKER_VOLUME",
    default: "10",
    description: "Circuit breaker: fewest calls in the rolling window (10 s) before it may open.",
    schema: int(1, 100_000),
  }),
  breakerResetMs: spec({
    env: "TOLLGATE_BREAKER_RESET_MS",
    default: "1000",
    description: "Circuit breaker: how long it stays open before letting a trial call through.",
    schema: int(10, 600_000),
  }),
  failMode: spec({
    env: "TOLLGATE_FAIL_MODE",
    default: "closed",
    description:
      "When the store is unreachable, for endpoints the policy gives no fail_mode: closed (UNAVAILABLE) or open (decide locally).",
    schema: z.enum(["open", "closed"]),
  }),
  staleKeyMaxMs: spec({
    env: "TOLLGATE_STALE_KEY_MAX_MS",
    default: "300000",
    description:
      "Fail open: how old a cached key may be and still authorize while the store is unreachable.",
    schema: int(0, 86_400_000),
  }),
  failOpenLimitShare: spec({
    env: "TOLLGATE_FAILOPEN_LIMIT_SHARE",
    default: "0.5",
    description:
      "Fail open: the in-memory insurance limiter allows this share of each real limit per replica (0..1).",
    schema: z.coerce.number().min(0).max(1),
  }),
  redisPrefix: spec({
    env: "TOLLGATE_REDIS_PREFIX",
    default: "tg:",
    description: "Prefix of every Redis key Tollgate writes.",
    schema: z.string().regex(/^[A-Za-z0-9:_-]{1,32}$/, "must be 1..32 of [A-Za-z0-9:_-]"),
  }),
  tlsCertFile: spec({
    env: "TOLLGATE_TLS_CERT_FILE",
    default: "",
    description:
      "PEM certificate (chain) for the RPC ports; with TOLLGATE_TLS_KEY_FILE enables TLS 1.3 on both. Reloaded when the file changes.",
    schema: z.string(),
  }),
  tlsKeyFile: spec({
    env: "TOLLGATE_TLS_KEY_FILE",
    default: "",
    description: "PEM private key for TOLLGATE_TLS_CERT_FILE.",
    schema: z.string(),
  }),
  tlsClientCaFile: spec({
    env: "TOLLGATE_TLS_CLIENT_CA_FILE",
    default: "",
    description: "PEM CA bundle: when set, clients must present a certificate it signed (mTLS).",
    schema: z.string(),
  }),
  allowPlaintext: spec({
    env: "TOLLGATE_ALLOW_PLAINTEXT",
    default: "false",
    description:
      "Allow an RPC port on a non-loopback address without TLS (logs a warning). Off: such a configuration refuses to start.",
    schema: z.enum(["true", "false"]).transform((s) => s === "true"),
  }),
  console: spec({
    env: "TOLLGATE_CONSOLE",
    default: "false",
    description:
      "Serve the web console at /console/ on the HTTP port (TOLLGATE_HTTP_ADDR), behind the management token; see docs/console.md. Off: /console/ is not served.",
    schema: z.enum(["true", "false"]).transform((s) => s === "true"),
  }),
  corsOrigins: spec({
    env: "TOLLGATE_CORS_ORIGINS",
    default: "",
    description:
      "Browser origins allowed to call the Connect / gRPC-Web API (comma-separated, e.g. https://app.example.com). Empty: CORS off.",
    schema: csvOf(
      z.array(
        z
          .string()
          .regex(/^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/, "origins are scheme://host[:port]"),
      ),
    ),
  }),
  managementTokensFile: spec({
    env: "TOLLGATE_MANAGEMENT_TOKENS_FILE",
    default: "",
    description:
      "File of named management tokens, one `name:token` per line (≥16-byte tokens), optionally followed by `read-only` (may call the read RPCs only), so actions are attributed and tokens rotate without downtime. Adds to TOLLGATE_MANAGEMENT_TOKEN.",
    schema: z.string(),
  }),
  pepper: spec({
    env: "TOLLGATE_PEPPER",
    default: "",
    description:
      "HMAC pepper for key digests (≥16 bytes). Required with Redis, which keeps its fingerprint: a start with another pepper is refused (see TOLLGATE_ACCEPT_NEW_PEPPER). The embedded store makes a random one per process.",
    schema: z
      .string()
      .refine((s) => s === "" || Buffer.byteLength(s) >= 16, "must be at least 16 bytes"),
    secret: true,
  }),
  pepperFile: spec({
    env: "TOLLGATE_PEPPER_FILE",
    default: "",
    description: "File holding the pepper (a mounted Secret); wins over TOLLGATE_PEPPER.",
    schema: z.string(),
  }),
  acceptNewPepper: spec({
    env: "TOLLGATE_ACCEPT_NEW_PEPPER",
    default: "false",
    description:
      "Start even though the pepper differs from the one whose fingerprint Redis holds, recording the new one (logged as a warning). Only for a deliberate change of pepper: keys created under the old one answer UNKNOWN_KEY and must be re-issued; remove it after the rollout. Off: such a start is refused.",
    schema: z.enum(["true", "false"]).transform((s) => s === "true"),
  }),
  managementToken: spec({
    env: "TOLLGATE_MANAGEMENT_TOKEN",
    default: "",
    description:
      "Bearer token for KeyService and id-based RotateKey (≥16 bytes). Empty: management is open on loopback only (dev mode).",
    schema: z
      .string()
      .refine((s) => s === "" || Buffer.byteLength(s) >= 16, "must be at least 16 bytes"),
    secret: true,
  }),
  managementTokenFile: spec({
    env: "TOLLGATE_MANAGEMENT_TOKEN_FILE",
    default: "",
    description: "File holding the management token; wins over TOLLGATE_MANAGEMENT_TOKEN.",
    schema: z.string(),
  }),
  allowEvictingRedis: spec({
    env: "TOLLGATE_ALLOW_EVICTING_REDIS",
    default: "false",
    description:
      "Run on a Redis whose maxmemory-policy can evict keys without a TTL (allkeys-*), which can delete API key records under memory pressure (logged as a warning). Off: such a Redis is refused at start.",
    schema: z.enum(["true", "false"]).transform((s) => s === "true"),
  }),
  storeCheckIntervalMs: spec({
    env: "TOLLGATE_STORE_CHECK_INTERVAL_MS",
    default: "5000",
    description:
      "How often the store's epoch marker is read to notice a Redis that lost its data (restart without persistence, flush, eviction), ms; 0 checks only when the connection becomes ready.",
    schema: int(0, 3_600_000),
  }),
  managementFailureDelayMaxMs: spec({
    env: "TOLLGATE_MANAGEMENT_FAILURE_DELAY_MAX_MS",
    default: "1000",
    description:
      "Token guessing: after 10 failed management authentications within 10 s, each further failure is answered after a delay doubling from 50 ms up to this many ms (a valid token is never delayed). 0 disables the delay; failures are always counted, logged and recorded as events.",
    schema: int(0, 60_000),
  }),
  policyFile: spec({
    env: "TOLLGATE_POLICY_FILE",
    default: "",
    description:
      "Policy YAML (tiers, endpoints, scopes). Empty: a built-in policy with tiers free and pro.",
    schema: z.string(),
  }),
  keyEnvironment: spec({
    env: "TOLLGATE_KEY_ENVIRONMENT",
    default: "live",
    description: "Default environment tag of new secrets (tg_<env>_…).",
    schema: z.string().regex(/^[a-z0-9]{1,16}$/, "must be 1..16 of [a-z0-9]"),
  }),
  cacheMaxEntries: spec({
    env: "TOLLGATE_CACHE_MAX_ENTRIES",
    default: "100000",
    description:
      "Most found keys cached (unknown keys have a space of their own: TOLLGATE_NEGATIVE_CACHE_MAX_ENTRIES).",
    schema: int(1, 10_000_000),
  }),
  // --- Memory bounds (docs/security-bounds.md): every in-memory structure input can grow.
  cacheMaxBytes: spec({
    env: "TOLLGATE_CACHE_MAX_BYTES",
    default: "128MiB",
    description:
      "Most estimated bytes of found keys cached (least recently used evicted first): a typical record is ≈ 1.1 KiB, the largest ≈ 40 KiB.",
    schema: bytes(65_536, 16 * 1024 ** 3),
  }),
  negativeCacheMaxEntries: spec({
    env: "TOLLGATE_NEGATIVE_CACHE_MAX_ENTRIES",
    default: "10000",
    description:
      "Most unknown keys (and unknown key ids) remembered as unknown, in their own LRU (≈ 640 B each), so unknown keys never evict found ones.",
    schema: int(1, 10_000_000),
  }),
  memoryRateMaxEntries: spec({
    env: "TOLLGATE_MEMORY_RATE_MAX_ENTRIES",
    default: "150000",
    description:
      "Embedded store and fail-open insurance limiter, each: most rate-limit entries (one per subject and limit, plus blocks). Past a bound the entries holding the least go first (see docs/security-bounds.md).",
    schema: int(100, 100_000_000),
  }),
  memoryRateMaxBytes: spec({
    env: "TOLLGATE_MEMORY_RATE_MAX_BYTES",
    default: "32MiB",
    description:
      "Embedded store and fail-open insurance limiter, each: most estimated bytes of rate-limit entries.",
    schema: bytes(65_536, 64 * 1024 ** 3),
  }),
  memoryEventMaxBytes: spec({
    env: "TOLLGATE_MEMORY_EVENT_MAX_BYTES",
    default: "16MiB",
    description:
      "Embedded store: most estimated bytes of security events held (with their idempotency ids); the oldest go first. TOLLGATE_EVENT_MAX_COUNT bounds their number.",
    schema: bytes(65_536, 64 * 1024 ** 3),
  }),
  memoryAlertMaxBytes: spec({
    env: "TOLLGATE_MEMORY_ALERT_MAX_BYTES",
    default: "4MiB",
    description:
      "Embedded store: most estimated bytes of alerts held; the oldest go first. TOLLGATE_ALERT_MAX_COUNT bounds their number.",
    schema: bytes(65_536, 64 * 1024 ** 3),
  }),
  memoryDetectionMaxEntries: spec({
    env: "TOLLGATE_MEMORY_DETECTION_MAX_ENTRIES",
    default: "50000",
    description:
      "Embedded store: most detection windows, spike states and cool-downs together; past a bound cool-downs go first, then the state holding the least evidence.",
    schema: int(100, 100_000_000),
  }),
  memoryDetectionMaxBytes: spec({
    env: "TOLLGATE_MEMORY_DETECTION_MAX_BYTES",
    default: "8MiB",
    description:
      "Embedded store: most estimated bytes of detection state (window members included).",
    schema: bytes(65_536, 64 * 1024 ** 3),
  }),
  memoryUsageMaxEntries: spec({
    env: "TOLLGATE_MEMORY_USAGE_MAX_ENTRIES",
    default: "200000",
    description:
      "Embedded store: most usage counter buckets (one per key and minute or hour); past a bound the oldest go first.",
    schema: int(100, 100_000_000),
  }),
  memoryUsageMaxBytes: spec({
    env: "TOLLGATE_MEMORY_USAGE_MAX_BYTES",
    default: "16MiB",
    description: "Embedded store: most estimated bytes of usage counters.",
    schema: bytes(65_536, 64 * 1024 ** 3),
  }),
  // --- end of memory bounds.
  cacheTtlMs: spec({
    env: "TOLLGATE_CACHE_TTL_MS",
    default: "5000",
    description:
      "How long a cached key is trusted without asking the store: the worst-case time a revocation whose invalidation message was lost stays unseen.",
    schema: int(0, 3_600_000),
  }),
  negativeCacheTtlMs: spec({
    env: "TOLLGATE_NEGATIVE_CACHE_TTL_MS",
    default: "1000",
    description: "How long an unknown key is remembered as unknown.",
    schema: int(0, 600_000),
  }),
  expiryWarningS: spec({
    env: "TOLLGATE_EXPIRY_WARNING_S",
    default: "604800",
    description: "Authorize hints `expires_soon` when a key expires within this many seconds.",
    schema: int(0, 31_536_000),
  }),
  rotationAgeS: spec({
    env: "TOLLGATE_ROTATION_AGE_S",
    default: "7776000",
    description:
      "Authorize hints `rotation_due` when the secret is older than this many seconds (0: never).",
    schema: int(0, 315_360_000),
  }),
  notifySweepIntervalS: spec({
    env: "TOLLGATE_NOTIFY_SWEEP_INTERVAL_S",
    default: "300",
    description:
      "How often each replica sweeps every key for the policy's `key_expiry_days` and `rotation_due` notifications, seconds (0: only when a key is used).",
    schema: int(0, 86_400),
  }),
  notifySweepPageSize: spec({
    env: "TOLLGATE_NOTIFY_SWEEP_PAGE_SIZE",
    default: "200",
    description: "Keys read per store call of the notification sweep.",
    schema: int(1, 1000),
  }),
  defaultGraceS: spec({
    env: "TOLLGATE_DEFAULT_GRACE_S",
    default: "86400",
    description: "Grace period of RotateKey when the request sets none, seconds.",
    schema: int(0, 2_592_000),
  }),
  logLevel: spec({
    env: "TOLLGATE_LOG_LEVEL",
    default: "info",
    description: "pino log level: trace, debug, info, warn, error, fatal or silent.",
    schema: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]),
  }),
  accessLog: spec({
    env: "TOLLGATE_ACCESS_LOG",
    default: "denials",
    description:
      "Access log lines (decision id, key id, reason, latency, traceparent): `denials` logs every denial and refusal and a sampled share of allowed decisions (TOLLGATE_ACCESS_LOG_SAMPLE); `all` (or `true`) logs every decision, at a measured cost in throughput (docs/performance.md); `off` (or `false`) none. Envoy and most gateways log every request themselves.",
    schema: z
      .enum(["all", "denials", "off", "true", "false"])
      .transform((s) => (s === "true" ? "all" : s === "false" ? "off" : s)),
  }),
  accessLogSample: spec({
    env: "TOLLGATE_ACCESS_LOG_SAMPLE",
    default: "0.01",
    description:
      "With TOLLGATE_ACCESS_LOG=denials: the share of allowed decisions logged (0..1; 0.01 is one in a hundred, evenly spaced, not random).",
    schema: z.coerce.number().min(0).max(1),
  }),
  otlpTracesUrl: spec({
    env: "TOLLGATE_OTLP_TRACES_URL",
    default: "",
    description:
      "OpenTelemetry traces: the OTLP/HTTP endpoint spans are exported to (e.g. http://otel-collector:4318/v1/traces): a span per decision, child of the caller's traceparent, with a child span per store call. Empty: tracing off, at no cost.",
    schema: z.union([z.literal(""), z.url({ protocol: /^https?$/ })]),
    secret: true,
  }),
  traceSampleRatio: spec({
    env: "TOLLGATE_TRACE_SAMPLE_RATIO",
    default: "1",
    description:
      "OpenTelemetry traces: share of new traces sampled (0..1); a caller's traceparent sampled flag is always honoured.",
    schema: z.coerce.number().min(0).max(1),
  }),
  shutdownTimeoutMs: spec({
    env: "TOLLGATE_SHUTDOWN_TIMEOUT_MS",
    default: "10000",
    description:
      "On SIGTERM, the deadline of the whole shutdown, whatever Redis does: in-flight calls may take all but its last tenth (at most 0.5 s), kept for writing buffered events; what is not written by then is counted as lost, Redis connections are dropped and the process exits 0.",
    schema: int(0, 600_000),
  }),
  workers: spec({
    env: "TOLLGATE_WORKERS",
    default: "1",
    description:
      "Processes serving the same ports (node:cluster), for gateway-style deployments that need more than one core; 1 (the sidecar case) runs one process and no primary. More than 1 needs Redis (REDIS_URL): on the embedded store each process would keep its own state, so it is refused. `tollgate serve --workers N` overrides it.",
    schema: int(1, 64),
  }),
  envoyKeyHeader: spec({
    env: "TOLLGATE_ENVOY_KEY_HEADER",
    default: "x-api-key",
    description: "ext_authz: the request header carrying the API key.",
    schema: z.string().regex(/^[a-z0-9-]{1,64}$/, "must be a lower-case header name"),
  }),
  envoyRemoveKeyHeader: spec({
    env: "TOLLGATE_ENVOY_REMOVE_KEY_HEADER",
    default: "true",
    description: "ext_authz: remove the API key header before the request reaches the application.",
    schema: z.enum(["true", "false"]).transform((s) => s === "true"),
  }),
  envoyIdentityHeaders: spec({
    env: "TOLLGATE_ENVOY_IDENTITY_HEADERS",
    default: "key-id,owner,tier,scopes",
    description:
      "ext_authz: identity headers set (overwriting any sent by the client) on allowed requests, as x-tollgate-<name>; any of key-id, owner, tier, scopes, environment. Empty: none.",
    schema: csvOf(z.array(z.enum(["key-id", "owner", "tier", "scopes", "environment"]))),
  }),
  denialDetail: spec({
    env: "TOLLGATE_DENIAL_DETAIL",
    default: "generic",
    description:
      "What a denied caller is told about a bad key (Authorize's message, ext_authz's denial body): generic (one 'invalid_key' for malformed, unknown, expired and revoked keys, so the holder of an old leaked key learns nothing) or detailed (the exact reason). The exact reason is always in the response's reason field, the logs and the events.",
    schema: z.enum(["generic", "detailed"]),
  }),
  trustedHops: spec({
    env: "TOLLGATE_TRUSTED_HOPS",
    default: "0",
    description:
      "ext_authz: number of trusted proxies appending to X-Forwarded-For; 0 uses the connection's source address and ignores X-Forwarded-For.",
    schema: int(0, 10),
  }),
  maxHeaders: spec({
    env: "TOLLGATE_MAX_HEADERS",
    default: "100",
    description:
      "ext_authz / Authorize: most request headers examined; more is denied (431), never allowed.",
    schema: int(1, 10_000),
  }),
  maxHeaderBytes: spec({
    env: "TOLLGATE_MAX_HEADER_BYTES",
    default: "65536",
    description: "ext_authz: most bytes of request header names and values; more is denied (431).",
    schema: int(1024, 1_048_576),
  }),
  maxMessageBytes: spec({
    env: "TOLLGATE_MAX_MESSAGE_BYTES",
    default: "1048576",
    description: "Largest request message accepted on any transport, bytes.",
    schema: int(1024, 67_108_864),
  }),
  // Transport bounds of the RPC ports (src/transport/transport-limits.ts).
  maxConnections: spec({
    env: "TOLLGATE_MAX_CONNECTIONS",
    default: "1000",
    description:
      "Most open connections across both RPC ports; more are closed on arrival (tollgate_transport_connections_refused_total, a warning at most every 10 s). Lowered at startup to the open-file limit minus 128, so the admin port and Redis always have descriptors.",
    schema: int(1, 1_000_000),
  }),
  headerTimeoutMs: spec({
    env: "TOLLGATE_HEADER_TIMEOUT_MS",
    default: "10000",
    description:
      "How long a new connection may take to send its first bytes and a complete request head (HTTP/1.1: then 408), or to finish the TLS or HTTP/2 handshake (its SETTINGS acknowledged); then it is closed, ms.",
    schema: int(100, 600_000),
  }),
  bodyTimeoutMs: spec({
    env: "TOLLGATE_BODY_TIMEOUT_MS",
    default: "30000",
    description:
      "How long a request body may take to arrive after its head, ms; then the request is refused (HTTP/2: RST_STREAM CANCEL; HTTP/1.1: 408 and the connection closed, counting from the request's first byte). A streaming request (Envoy's RLQS reports) is timed from its last message instead.",
    schema: int(100, 600_000),
  }),
  idleTimeoutMs: spec({
    env: "TOLLGATE_IDLE_TIMEOUT_MS",
    default: "300000",
    description:
      "An HTTP/2 connection without a request for this long is sent GOAWAY and closed, ms (a connection with a request in flight never is; quiet ones are pinged meanwhile, and closed if they stop answering). HTTP/1.1 keep-alive connections close after the lesser of this and 5 s.",
    schema: int(1000, 86_400_000),
  }),
  maxHeaderListBytes: spec({
    env: "TOLLGATE_MAX_HEADER_LIST_BYTES",
    default: "65536",
    description:
      "Largest request header list, bytes (HTTP/2: names + values + 32 per field, enforced from the first stream; HTTP/1.1: the request head). More is refused: HTTP/2 RST_STREAM ENHANCE_YOUR_CALM, HTTP/1.1 431.",
    schema: int(4096, 1_048_576),
  }),
  maxStreamsPerConnection: spec({
    env: "TOLLGATE_MAX_STREAMS_PER_CONNECTION",
    default: "100",
    description:
      "HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: requests one connection may have in flight; clients queue or open another connection beyond it.",
    schema: int(1, 10_000),
  }),
  maxInflightRequests: spec({
    env: "TOLLGATE_MAX_INFLIGHT_REQUESTS",
    default: "500",
    description:
      "Requests in flight at once across every RPC connection and protocol; more are refused before their handler runs (HTTP/2 REFUSED_STREAM, safe to retry; HTTP/1.1 503) and counted in tollgate_transport_requests_refused_total.",
    schema: int(1, 1_000_000),
  }),
  maxInflightBodyBytes: spec({
    env: "TOLLGATE_MAX_INFLIGHT_BODY_BYTES",
    default: "33554432",
    description:
      "Request-body bytes held at once across every in-flight request (never less than TOLLGATE_MAX_MESSAGE_BYTES); the request that would pass it is refused (HTTP/2 RST_STREAM ENHANCE_YOUR_CALM; HTTP/1.1 503, reserving its content-length).",
    schema: int(65_536, 4_294_967_296),
  }),
  eventRetentionS: spec({
    env: "TOLLGATE_EVENT_RETENTION_S",
    default: "604800",
    description:
      "How long security events and alerts are kept (and event ids deduplicated), seconds; older ones are trimmed automatically.",
    schema: int(60, 366 * 86_400),
  }),
  eventMaxCount: spec({
    env: "TOLLGATE_EVENT_MAX_COUNT",
    default: "1000000",
    description:
      "Most security events kept (Redis: split evenly over 8 stream shards; embedded store: one ring).",
    schema: int(100, 100_000_000),
  }),
  alertMaxCount: spec({
    env: "TOLLGATE_ALERT_MAX_COUNT",
    default: "100000",
    description: "Most alerts kept in the alerts stream.",
    schema: int(10, 10_000_000),
  }),
  usageRetentionS: spec({
    env: "TOLLGATE_USAGE_RETENTION_S",
    default: "604800",
    description: "How long per-minute and per-hour usage counters are kept, seconds.",
    schema: int(3600, 366 * 86_400),
  }),
  eventBufferSize: spec({
    env: "TOLLGATE_EVENT_BUFFER_SIZE",
    default: "10000",
    description:
      "Most of Tollgate's own events buffered between background writes, and as many open aggregates of repeated ones, distinct request counters and key fingerprints for detection; beyond it they are dropped and counted.",
    schema: int(10, 1_000_000),
  }),
  eventFlushMs: spec({
    env: "TOLLGATE_EVENT_FLUSH_MS",
    default: "100",
    description:
      "Interval of the background write of Tollgate's own events, usage counters and their detection, ms.",
    schema: int(5, 10_000),
  }),
  eventMaxBytes: spec({
    env: "TOLLGATE_EVENT_MAX_BYTES",
    default: "67108864",
    description:
      "Most bytes of security events kept, with their idempotency markers (counted as the JSON plus 64 bytes per event, plus 128 per marker; Redis: split evenly over the 8 stream shards), besides TOLLGATE_EVENT_MAX_COUNT: the oldest are trimmed first. Keep it well under Redis's maxmemory.",
    schema: int(1_048_576, 68_719_476_736),
  }),
  eventAggregateMs: spec({
    env: "TOLLGATE_EVENT_AGGREGATE_MS",
    default: "10000",
    description:
      "Tollgate's own repeated events (auth_failure, permission_denied, rate_limited, blocked) are stored as one record per type, subject and reason per window of this many ms, with a count; the first of a burst is stored at once. Detection still sees every failure.",
    schema: int(1000, 600_000),
  }),
  detectionMaxSubjects: spec({
    env: "TOLLGATE_DETECTION_MAX_SUBJECTS",
    default: "10000",
    description:
      "Most subjects (IPs, keys, owners, caller subjects) one detection rule tracks at a time, over all replicas; beyond it the least recently seen subject's window is forgotten (counted in tollgate_detection_subjects_forgotten_total).",
    schema: int(100, 10_000_000),
  }),
} as const;

type Specs = typeof SETTINGS;
/** The validated settings. */
export type Settings = { [K in keyof Specs]: Specs[K] extends SettingSpec<infer T> ? T : never };

/** Thrown for invalid settings; the message names each variable. */
export class SettingsError extends Error {
  override name = "SettingsError";
}

/**
 * Reads and validates every setting from `env`. Collects all problems before
 * throwing, so one run shows every bad variable. Values of secret settings are
 * never part of an error message.
 */
export function loadSettings(env: NodeJS.ProcessEnv): Settings {
  const out: Record<string, unknown> = {};
  const problems = misspelledSettings(env);
  for (const [name, s] of Object.entries(SETTINGS) as [string, SettingSpec<unknown>][]) {
    const given = env[s.env];
    const raw = given === undefined ? s.default : withUnit(s.env, given, problems);
    if (raw === undefined) continue;
    const r = s.schema.safeParse(raw);
    if (r.success) out[name] = r.data;
    else problems.push(`${s.env}: ${r.error.issues.map((i) => i.message).join(", ")}`);
  }
  if (problems.length === 0) problems.push(...addressClashes(out as Settings));
  if (problems.length > 0) throw new SettingsError(`invalid settings: ${problems.join("; ")}`);
  return out as Settings;
}

/** The listening addresses, each with its setting's name (an empty one is off). */
export function listenAddresses(s: Settings): { setting: string; addr: string }[] {
  return [
    { setting: SETTINGS.grpcAddr.env, addr: s.grpcAddr },
    { setting: SETTINGS.httpAddr.env, addr: s.httpAddr },
    { setting: SETTINGS.adminAddr.env, addr: s.adminAddr },
  ].filter((a) => a.addr !== "");
}

/**
 * Two Tollgate settings naming the same port: the same host, or a wildcard
 * host and any other (port 0, "any free port", never clashes).
 */
function addressClashes(s: Settings): string[] {
  const wild = new Set(["", "0.0.0.0", "[::]", "::"]);
  const split = (a: string) => {
    const i = a.lastIndexOf(":");
    return { host: a.slice(0, i), port: a.slice(i + 1) };
  };
  const all = listenAddresses(s);
  const out: string[] = [];
  for (const [i, a] of all.entries()) {
    for (const b of all.slice(i + 1)) {
      const x = split(a.addr);
      const y = split(b.addr);
      if (x.port === "0" || x.port !== y.port) continue;
      if (x.host === y.host || wild.has(x.host) || wild.has(y.host)) {
        out.push(
          `${a.setting} (${a.addr}) and ${b.setting} (${b.addr}) name the same port: give each its own`,
        );
      }
    }
  }
  return out;
}

/** Names read from the environment that are not settings of the server (CLI and test knobs). */
const OTHER_NAMES = new Set(["TOLLGATE_SERVER", "TOLLGATE_FAULT_RESULTS", "TOLLGATE_CONFIG"]);

/**
 * `TOLLGATE_*` variables that are not settings but look like one (a typo such
 * as TOLLGATE_POLICY or TOLLGATE_LOGLEVEL): refused naming the closest, since
 * a silently ignored setting is worse than a refusal. Unrelated `TOLLGATE_*`
 * names (e.g. a webhook secret's `secret_env`) are left alone.
 */
function misspelledSettings(env: NodeJS.ProcessEnv): string[] {
  const known = Object.values(SETTINGS).map((s) => s.env);
  const out: string[] = [];
  for (const name of Object.keys(env)) {
    if (!name.startsWith("TOLLGATE_") || known.includes(name) || OTHER_NAMES.has(name)) continue;
    const close = closestSetting(name, known);
    if (close) out.push(`${name}: not a Tollgate setting; did you mean ${close}?`);
  }
  return out;
}

/** The known name `name` is most likely a misspelling of, if any is close. */
export function closestSetting(name: string, known: readonly string[]): string | undefined {
  const squash = (s: string) => s.replace(/_/g, "");
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const k of known) {
    // TOLLGATE_POLICY for TOLLGATE_POLICY_FILE, TOLLGATE_CACHE_TTL for …_TTL_MS.
    const prefix = k.startsWith(`${name}_`) ? 1 : Number.POSITIVE_INFINITY;
    const d = Math.min(prefix, editDistance(squash(name), squash(k)), editDistance(name, k));
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return bestDistance <= 2 ? best : undefined;
}

/** Levenshtein distance (small strings only). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(
        (prev[j] as number) + 1,
        (cur[j - 1] as number) + 1,
        (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    prev = cur;
  }
  return prev[b.length] as number;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A duration with a unit (`5s`, `1500ms`, `2m`) given to a setting whose name
 * carries its unit (`…_MS`, `…_S`) is converted to that unit; one that does
 * not convert to a whole number is refused, naming what was meant.
 */
function withUnit(env: string, value: string, problems: string[]): string | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(value);
  const unit = env.endsWith("_MS") ? 1 : env.endsWith("_S") ? 1000 : 0;
  if (!m || unit === 0) return value;
  const n = (Number(m[1]) * (UNIT_MS[m[2] as string] as number)) / unit;
  if (!Number.isInteger(n)) {
    problems.push(
      `${env}: "${value}" is not a whole number of ${unit === 1 ? "milliseconds" : "seconds"}`,
    );
    return undefined;
  }
  return String(n);
}

/** The settings table as text (for `--help`). */
export function settingsHelp(): string {
  return Object.values(SETTINGS)
    .map((s) => `  ${s.env}${s.default ? ` (default ${s.default})` : ""}\n      ${s.description}`)
    .join("\n");
}

/** The settings table as Markdown (for the README). */
export function settingsMarkdown(): string {
  const rows = Object.values(SETTINGS).map(
    (s) => `| \`${s.env}\` | ${s.default ? `\`${s.default}\`` : "(empty)"} | ${s.description} |`,
  );
  return ["| variable | default | description |", "| --- | --- | --- |", ...rows].join("\n");
}
