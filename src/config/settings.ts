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
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
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
    default: "10",
    description:
      "Per-command Redis timeout, well under Envoy's 20 ms rate-limit and 200 ms ext_authz budgets; a timed-out command is a store failure (fail mode applies).",
    schema: int(1, 60_000),
  }),
  redisConnectTimeoutMs: spec({
    env: "TOLLGATE_REDIS_CONNECT_TIMEOUT_MS",
    default: "1000",
    description: "Redis connect timeout; reconnects back off exponentially up to 2 s.",
    schema: int(10, 60_000),
  }),
  breakerTimeoutMs: spec({
    env: "TOLLGATE_BREAKER_TIMEOUT_MS",
    default: "50",
    description: "Circuit breaker: a store call slower than this counts as a failure.",
    schema: int(1, 60_000),
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
      "File of named management tokens, one `name:token` per line (≥16-byte tokens), so actions are attributed and tokens rotate without downtime. Adds to TOLLGATE_MANAGEMENT_TOKEN.",
    schema: z.string(),
  }),
  pepper: spec({
    env: "TOLLGATE_PEPPER",
    default: "",
    description:
      "HMAC pepper for key digests (≥16 bytes). Required with Redis; the embedded store makes a random one per process.",
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
    description: "Most key lookups cached (found and unknown together).",
    schema: int(1, 10_000_000),
  }),
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
    default: "true",
    description: "Log one line per decision (decision id, key id, reason, latency).",
    schema: z.enum(["true", "false"]).transform((s) => s === "true"),
  }),
  shutdownTimeoutMs: spec({
    env: "TOLLGATE_SHUTDOWN_TIMEOUT_MS",
    default: "10000",
    description: "On SIGTERM, how long in-flight calls may take before connections are closed.",
    schema: int(0, 600_000),
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
      "How long a request body may take to arrive after its head, ms; then the request is refused (HTTP/2: RST_STREAM CANCEL; HTTP/1.1: 408 and the connection closed, counting from the request's first byte).",
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
      "Most of Tollgate's own events (and distinct request counters) buffered between background writes; beyond it they are dropped and counted.",
    schema: int(10, 1_000_000),
  }),
  eventFlushMs: spec({
    env: "TOLLGATE_EVENT_FLUSH_MS",
    default: "100",
    description:
      "Interval of the background write of Tollgate's own events, usage counters and their detection, ms.",
    schema: int(5, 10_000),
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
  const problems: string[] = [];
  for (const [name, s] of Object.entries(SETTINGS) as [string, SettingSpec<unknown>][]) {
    const raw = env[s.env] ?? s.default;
    const r = s.schema.safeParse(raw);
    if (r.success) out[name] = r.data;
    else problems.push(`${s.env}: ${r.error.issues.map((i) => i.message).join(", ")}`);
  }
  if (problems.length > 0) throw new SettingsError(`invalid settings: ${problems.join("; ")}`);
  return out as Settings;
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
