/**
 * `createTollgateClient(options)`: typed methods for every RPC of
 * `tollgate.v1.TollgateService` and `tollgate.v1.KeyService`, each with a
 * deadline, retries where they are safe, one circuit breaker per client and an
 * optional allow-cache for Authorize without `apply_limits`; `exportAllKeys()`
 * pages through ExportKeys.
 *
 * The transport is gRPC over HTTP/2 cleartext (or TLS for https) to the main
 * port, the server's fast path; `protocol: "connect"` uses Connect over
 * HTTP/1.1 to the same port instead.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { clone, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { AllowCache, type AllowCacheKey, type AllowCacheOptions } from "./allow-cache.js";
import {
  type BreakerState,
  CircuitBreaker,
  type CircuitBreakerOptions,
} from "./circuit-breaker.js";
import { breakerOpenError, isUnreachable, toConnectError } from "./errors.js";
import {
  type ExpressTollgateOptions,
  expressMiddleware,
  type TollgateExpressMiddleware,
} from "./express.js";
import {
  type CreateKeyRequestSchema,
  type CreateKeyResponse,
  type DeleteBlockRequestSchema,
  type DeleteBlockResponse,
  type ExportKeysRequestSchema,
  type ExportKeysResponse,
  type GetKeyRequestSchema,
  type GetKeyResponse,
  type GetUsageRequestSchema,
  type GetUsageResponse,
  type ImportKeysRequestSchema,
  type ImportKeysResponse,
  KeyService,
  type ListAlertsRequestSchema,
  type ListAlertsResponse,
  type ListBlocksRequestSchema,
  type ListBlocksResponse,
  type ListEventsRequestSchema,
  type ListEventsResponse,
  type ListKeysRequestSchema,
  type ListKeysResponse,
  type RevokeKeyRequestSchema,
  type RevokeKeyResponse,
  type UpdateKeyRequestSchema,
  type UpdateKeyResponse,
} from "./gen/tollgate/v1/key_service_pb.js";
import type {
  FollowEventsRequestSchema,
  FollowEventsResponse,
  TailDecisionsRequestSchema,
  TailDecisionsResponse,
} from "./gen/tollgate/v1/live_pb.js";
import type {
  DeleteLimitOverrideRequestSchema,
  DeleteLimitOverrideResponse,
  ListLimitOverridesRequestSchema,
  ListLimitOverridesResponse,
  SetLimitOverrideRequestSchema,
  SetLimitOverrideResponse,
} from "./gen/tollgate/v1/override_pb.js";
import {
  type AuthorizeRequestSchema,
  type AuthorizeResponse,
  AuthorizeResponseSchema,
  type CheckRateLimitRequestSchema,
  type CheckRateLimitResponse,
  type RecordEventRequestSchema,
  type RecordEventResponse,
  type RotateKeyRequestSchema,
  type RotateKeyResponse,
  TollgateService,
} from "./gen/tollgate/v1/tollgate_service_pb.js";
import type {
  ReportUsageRequestSchema,
  ReportUsageResponse,
} from "./gen/tollgate/v1/usage_report_pb.js";
import {
  backoffDelayMs,
  isRetryable,
  RETRY_SAFE,
  type RetryOptions,
  retryPolicy,
} from "./retry-policy.js";
import { resolveSettings } from "./settings.js";

/** Options of {@link createTollgateClient}. Every field is optional. */
export interface TollgateClientOptions {
  /** Server URL (http or https). Default: `$TOLLGATE_SERVER`, else `http://127.0.0.1:50051`. */
  server?: string;
  /**
   * Management token, sent as `authorization: Bearer …` on KeyService calls and
   * on RotateKey by key id, never elsewhere. Default: the trimmed contents of
   * `managementTokenFile`, else of `$TOLLGATE_MANAGEMENT_TOKEN_FILE`, else
   * `$TOLLGATE_MANAGEMENT_TOKEN`, else none (dev mode). Never logged.
   */
  managementToken?: string;
  /** File holding the management token (contents trimmed). Default: `$TOLLGATE_MANAGEMENT_TOKEN_FILE`. */
  managementTokenFile?: string;
  /** `"grpc"` (default: gRPC over HTTP/2, the fast path) or `"connect"` (Connect over HTTP/1.1). */
  protocol?: "grpc" | "connect";
  /** Deadline of each TollgateService call (Authorize, CheckRateLimit, RecordEvent, ReportUsage, RotateKey), in ms, retries included. Default 200. */
  timeoutMs?: number;
  /** Deadline of each KeyService call, in ms, retries included. Default 2000. */
  managementTimeoutMs?: number;
  /**
   * Deadline of each ExportKeys call (one page) and ImportKeys call (one batch
   * of up to 500 records), in ms, retries included. Default 30000.
   */
  bulkTimeoutMs?: number;
  /** Retries of safe calls on UNAVAILABLE. Default: 2 retries, 25 ms base, 250 ms cap, full jitter. */
  retry?: RetryOptions;
  /** The circuit breaker (5 consecutive failures, 1 s to half-open), or `false` for none. */
  breaker?: Omit<CircuitBreakerOptions, "now"> | false;
  /**
   * The allow-cache for Authorize without `apply_limits`: `true` for the
   * defaults (10 000 entries, 5 000 ms), settings, or `false` (default: off).
   * The TTL is clamped to at most 5 000 ms, the server's revocation bound.
   */
  allowCache?: boolean | Omit<AllowCacheOptions, "now">;
  /** The environment to read instead of `process.env` (tests). */
  env?: Record<string, string | undefined>;
}

/** Per-call options. */
export interface TollgateCallOptions {
  /** This call's deadline in ms (retries included), instead of the client's. */
  timeoutMs?: number;
  /** Cancels the call (and any retry wait): the call fails with CANCELED. */
  signal?: AbortSignal;
  /** Extra request headers (e.g. `traceparent`). */
  headers?: Record<string, string>;
}

/** A unary method of the client. */
type Method<I extends Parameters<typeof clone>[0], O> = (
  request: MessageInitShape<I>,
  options?: TollgateCallOptions,
) => Promise<O>;

/** A server-streaming method of the client. */
type StreamMethod<I extends Parameters<typeof clone>[0], O> = (
  request: MessageInitShape<I>,
  options?: TollgateCallOptions,
) => AsyncIterable<O>;

/**
 * A Tollgate client. Every method rejects with a `ConnectError`: UNAVAILABLE
 * when the server cannot be reached (or the breaker is open),
 * DEADLINE_EXCEEDED when the deadline passed, INVALID_ARGUMENT for bad input.
 * A denial is not an error: it is an OK response with `allowed: false`.
 */
export interface TollgateClient {
  /** The server URL in use. */
  readonly server: string;
  /** Checks a key for a request (with `applyLimits`, also charges the endpoint's limits). Retried only without `applyLimits`. */
  authorize: Method<typeof AuthorizeRequestSchema, AuthorizeResponse>;
  /** Checks and charges limits. Never retried. */
  checkRateLimit: Method<typeof CheckRateLimitRequestSchema, CheckRateLimitResponse>;
  /** Records 1..100 security events (idempotent by event id, so retried). */
  recordEvent: Method<typeof RecordEventRequestSchema, RecordEventResponse>;
  /**
   * Charges a cost known only after the response (tokens of an LLM answer, rows
   * of an export) to the limits a CheckRateLimit with the same facts would
   * charge, without denying: the next decision sees the debt. Idempotent by
   * `id`, so retried. Sends the management token unless the request carries
   * the reported request's own `apiKey` (as the middleware's `reportUsage` does).
   */
  reportUsage: Method<typeof ReportUsageRequestSchema, ReportUsageResponse>;
  /** Issues a new secret, by key id (sends the management token) or by current secret. Never retried. */
  rotateKey: Method<typeof RotateKeyRequestSchema, RotateKeyResponse>;
  /** Creates a key; its secret is in the response, once. Never retried. */
  createKey: Method<typeof CreateKeyRequestSchema, CreateKeyResponse>;
  /** Returns a key (never its secret). */
  getKey: Method<typeof GetKeyRequestSchema, GetKeyResponse>;
  /** Lists keys a page at a time. */
  listKeys: Method<typeof ListKeysRequestSchema, ListKeysResponse>;
  /** Changes the fields named in `updateMask`. Never retried. */
  updateKey: Method<typeof UpdateKeyRequestSchema, UpdateKeyResponse>;
  /** Revokes a key at once and for good (idempotent, so retried). */
  revokeKey: Method<typeof RevokeKeyRequestSchema, RevokeKeyResponse>;
  /** Lists active blocks. */
  listBlocks: Method<typeof ListBlocksRequestSchema, ListBlocksResponse>;
  /** Lifts a block. Never retried. */
  deleteBlock: Method<typeof DeleteBlockRequestSchema, DeleteBlockResponse>;
  /** Sets a key's or an owner's override of one named limit (raise, lower, exempt; optional expiry). Never retried; clears the allow-cache. */
  setLimitOverride: Method<typeof SetLimitOverrideRequestSchema, SetLimitOverrideResponse>;
  /** Removes a key's or an owner's override of one named limit. Never retried; clears the allow-cache. */
  deleteLimitOverride: Method<typeof DeleteLimitOverrideRequestSchema, DeleteLimitOverrideResponse>;
  /** Lists the overrides of a key (with its effective limits) or an owner, or every one. */
  listLimitOverrides: Method<typeof ListLimitOverridesRequestSchema, ListLimitOverridesResponse>;
  /** Lists security events, newest first. */
  listEvents: Method<typeof ListEventsRequestSchema, ListEventsResponse>;
  /** Lists alerts, newest first. */
  listAlerts: Method<typeof ListAlertsRequestSchema, ListAlertsResponse>;
  /** A key's request counts over a time range. */
  getUsage: Method<typeof GetUsageRequestSchema, GetUsageResponse>;
  /** One page of every key (revoked ones too) with its secrets' digests, by id: the backup. Deadline `bulkTimeoutMs`. */
  exportKeys: Method<typeof ExportKeysRequestSchema, ExportKeysResponse>;
  /**
   * Imports 1..500 records (an export, or foreign keys by SHA-256 digest), one
   * outcome per record. Deadline `bulkTimeoutMs`. Retried only without
   * `overwrite` (idempotent then); clears the allow-cache.
   */
  importKeys: Method<typeof ImportKeysRequestSchema, ImportKeysResponse>;
  /**
   * This replica's decisions: up to `backlog` (0..1000) recent ones, then, with
   * `follow`, each as it is taken, until `limit`, `options.signal` aborts or
   * `options.timeoutMs` (default: none) passes. Never retried, no breaker:
   * break out of the loop (or abort) to end it. Sends the management token.
   */
  tailDecisions: StreamMethod<typeof TailDecisionsRequestSchema, TailDecisionsResponse>;
  /**
   * Security events as they are stored (from `startTime`, default the call's
   * start), oldest first, with ListEvents' filters; ends as `tailDecisions` does.
   */
  followEvents: StreamMethod<typeof FollowEventsRequestSchema, FollowEventsResponse>;
  /**
   * Every page of ExportKeys in turn, from `request.pageToken` (default: the
   * first page) to the last. Each page is one `exportKeys` call with its own
   * deadline (`options.timeoutMs`, else `bulkTimeoutMs`) and retries; a
   * failure ends the iteration with that error. Each page carries the
   * `pepperFingerprintPrefix` its records need on import.
   */
  exportAllKeys(
    request?: MessageInitShape<typeof ExportKeysRequestSchema>,
    options?: TollgateCallOptions,
  ): AsyncGenerator<ExportKeysResponse, void, undefined>;
  /** Express middleware protecting every request (see {@link expressMiddleware}). */
  express(options?: ExpressTollgateOptions): TollgateExpressMiddleware;
  /** The circuit breaker's state ("closed" when the breaker is disabled). */
  breakerState(): BreakerState;
  /** Forgets every cached decision (no-op without the allow-cache). */
  clearAllowCache(): void;
  /** Closes the HTTP/2 connection. Calls after close open a new one. */
  close(): void;
}

/** Creates a client; see {@link TollgateClientOptions} for every default. */
export function createTollgateClient(options: TollgateClientOptions = {}): TollgateClient {
  const settings = resolveSettings({
    server: options.server,
    managementToken: options.managementToken,
    managementTokenFile: options.managementTokenFile,
    env: options.env,
  });
  const baseUrl = settings.server;
  // gRPC keeps one HTTP/2 connection per client, closed by close().
  const sessionManager =
    options.protocol === "connect" ? undefined : new Http2SessionManager(baseUrl);
  const transport = sessionManager
    ? createGrpcTransport({ baseUrl, sessionManager })
    : createConnectTransport({ baseUrl, httpVersion: "1.1" });
  const tg = createClient(TollgateService, transport);
  const ks = createClient(KeyService, transport);
  const breaker = options.breaker === false ? undefined : new CircuitBreaker(options.breaker);
  const policy = retryPolicy(options.retry);
  const cache = options.allowCache
    ? new AllowCache<AuthorizeResponse>(options.allowCache === true ? {} : options.allowCache)
    : undefined;
  const fastMs = options.timeoutMs ?? 200;
  const slowMs = options.managementTimeoutMs ?? 2000;
  const bulkMs = options.bulkTimeoutMs ?? 30_000;
  const bearer = settings.managementToken
    ? { authorization: `Bearer ${settings.managementToken}` }
    : undefined;

  /** One call: breaker, deadline, retries (if `safe`); always rejects with a ConnectError. */
  async function invoke<R>(
    attempt: (o: {
      timeoutMs: number;
      signal?: AbortSignal;
      headers?: Record<string, string>;
    }) => Promise<R>,
    safe: boolean,
    defaultMs: number,
    management: boolean,
    o: TollgateCallOptions | undefined,
  ): Promise<R> {
    const deadline = performance.now() + (o?.timeoutMs ?? defaultMs);
    const headers = management && bearer ? { ...o?.headers, ...bearer } : o?.headers;
    for (let retry = 0; ; retry++) {
      const remaining = Math.floor(deadline - performance.now());
      if (remaining <= 0) throw new ConnectError("deadline exceeded", Code.DeadlineExceeded);
      if (breaker && !breaker.tryAcquire()) throw breakerOpenError();
      let err: ConnectError;
      try {
        const res = await attempt({
          timeoutMs: remaining,
          ...(o?.signal && { signal: o.signal }),
          ...(headers && { headers }),
        });
        breaker?.success();
        return res;
      } catch (e) {
        err = toConnectError(e);
        if (isUnreachable(err)) breaker?.failure();
        else if (err.code === Code.Canceled) breaker?.neutral();
        else breaker?.success();
      }
      if (!safe || !isRetryable(err) || retry >= policy.maxRetries) throw err;
      const delay = backoffDelayMs(policy, retry);
      // A retry that could not start before the deadline is not attempted.
      if (performance.now() + delay >= deadline) throw err;
      try {
        await sleep(delay, undefined, o?.signal ? { signal: o.signal } : undefined);
      } catch {
        throw new ConnectError("call cancelled", Code.Canceled);
      }
    }
  }

  const fast = <Req, Res>(
    rpc: (req: Req, o: object) => Promise<Res>,
    safe: (req: Req) => boolean,
    management: (req: Req) => boolean = () => false,
  ) => {
    return (req: Req, o?: TollgateCallOptions) =>
      invoke((c) => rpc(req, c), safe(req), fastMs, management(req), o);
  };
  const slow = <Req, Res>(
    rpc: (req: Req, o: object) => Promise<Res>,
    safe: (req: Req) => boolean,
    defaultMs = slowMs,
  ) => {
    return (req: Req, o?: TollgateCallOptions) =>
      invoke((c) => rpc(req, c), safe(req), defaultMs, true, o);
  };
  /** A change to a key through this client makes every cached decision stale. */
  const invalidating = <Req, Res>(m: (req: Req, o?: TollgateCallOptions) => Promise<Res>) => {
    return async (req: Req, o?: TollgateCallOptions) => {
      const res = await m(req, o);
      cache?.clear();
      return res;
    };
  };

  /** A stream: the management token, the caller's signal and deadline (none by default), no retry. */
  const stream = <Req, Res>(rpc: (req: Req, o: object) => AsyncIterable<Res>) => {
    return (req: Req, o?: TollgateCallOptions) => {
      const headers = bearer ? { ...o?.headers, ...bearer } : o?.headers;
      return rpc(req, {
        ...(o?.timeoutMs !== undefined && { timeoutMs: o.timeoutMs }),
        ...(o?.signal && { signal: o.signal }),
        ...(headers && { headers }),
      });
    };
  };

  const authorizeUncached = fast(tg.authorize, RETRY_SAFE.authorize);
  const exportKeys = slow(ks.exportKeys, RETRY_SAFE.exportKeys, bulkMs);
  const client: TollgateClient = {
    server: baseUrl,
    async authorize(req, o) {
      const key = cache && req.applyLimits !== true ? allowCacheKey(req) : undefined;
      if (key) {
        const hit = cache?.get(key);
        if (hit) return clone(AuthorizeResponseSchema, hit);
      }
      const res = await authorizeUncached(req, o);
      if (key && res.allowed && !res.decidedLocally)
        cache?.set(key, clone(AuthorizeResponseSchema, res));
      return res;
    },
    checkRateLimit: fast(tg.checkRateLimit, RETRY_SAFE.checkRateLimit),
    recordEvent: fast(tg.recordEvent, RETRY_SAFE.recordEvent),
    rotateKey: invalidating(
      fast(tg.rotateKey, RETRY_SAFE.rotateKey, (req) => (req.keyId ?? "") !== ""),
    ),
    // By the reported request's own apiKey no token is needed; else it acts on any key.
    reportUsage: fast(tg.reportUsage, RETRY_SAFE.reportUsage, (req) => (req.apiKey ?? "") === ""),
    createKey: slow(ks.createKey, RETRY_SAFE.createKey),
    getKey: slow(ks.getKey, RETRY_SAFE.getKey),
    listKeys: slow(ks.listKeys, RETRY_SAFE.listKeys),
    updateKey: invalidating(slow(ks.updateKey, RETRY_SAFE.updateKey)),
    revokeKey: invalidating(slow(ks.revokeKey, RETRY_SAFE.revokeKey)),
    listBlocks: slow(ks.listBlocks, RETRY_SAFE.listBlocks),
    deleteBlock: slow(ks.deleteBlock, RETRY_SAFE.deleteBlock),
    setLimitOverride: invalidating(slow(ks.setLimitOverride, RETRY_SAFE.setLimitOverride)),
    deleteLimitOverride: invalidating(slow(ks.deleteLimitOverride, RETRY_SAFE.deleteLimitOverride)),
    listLimitOverrides: slow(ks.listLimitOverrides, RETRY_SAFE.listLimitOverrides),
    listEvents: slow(ks.listEvents, RETRY_SAFE.listEvents),
    listAlerts: slow(ks.listAlerts, RETRY_SAFE.listAlerts),
    getUsage: slow(ks.getUsage, RETRY_SAFE.getUsage),
    exportKeys,
    importKeys: invalidating(slow(ks.importKeys, RETRY_SAFE.importKeys, bulkMs)),
    tailDecisions: stream(ks.tailDecisions),
    followEvents: stream(ks.followEvents),
    async *exportAllKeys(req = {}, o) {
      let pageToken = req.pageToken ?? "";
      do {
        const page = await exportKeys({ ...req, pageToken }, o);
        yield page;
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
    },
    express: (o) => expressMiddleware(client, o),
    breakerState: () => breaker?.state() ?? "closed",
    clearAllowCache: () => cache?.clear(),
    close: () => sessionManager?.abort(),
  };
  return client;
}

/** The allow-cache key of an Authorize request, or undefined when no key is presented. */
function allowCacheKey(
  req: MessageInitShape<typeof AuthorizeRequestSchema>,
): AllowCacheKey | undefined {
  let apiKey = req.apiKey ?? "";
  if (apiKey === "") {
    for (const [name, value] of Object.entries(req.headers ?? {})) {
      if (name.toLowerCase() === "x-api-key") apiKey = value;
    }
  }
  if (apiKey === "") return undefined;
  return {
    apiKey,
    method: req.method ?? "",
    path: req.path ?? "",
    endpoint: req.endpoint ?? "",
    clientIp: req.clientIp ?? "",
    scopes: req.requiredScopes ?? [],
  };
}
