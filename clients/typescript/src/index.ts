/**
 * @tollgate/client: the Tollgate client for Node, with Express middleware.
 * The Fastify plugin is in `@tollgate/client/fastify`.
 */
export { AllowCache, type AllowCacheOptions, MAX_ALLOW_CACHE_TTL_MS } from "./allow-cache.js";
export {
  type BreakerState,
  CircuitBreaker,
  type CircuitBreakerOptions,
} from "./circuit-breaker.js";
export {
  createTollgateClient,
  type TollgateCallOptions,
  type TollgateClient,
  type TollgateClientOptions,
} from "./client.js";
export {
  type ExpressTollgateOptions,
  expressMiddleware,
  type TollgateExpressMiddleware,
  type TollgateRequestHandler,
} from "./express.js";
export * from "./gen/tollgate/v1/common_pb.js";
export * from "./gen/tollgate/v1/credits_pb.js";
export * from "./gen/tollgate/v1/event_pb.js";
export * from "./gen/tollgate/v1/key_export_pb.js";
export * from "./gen/tollgate/v1/key_pb.js";
export * from "./gen/tollgate/v1/key_service_pb.js";
export * from "./gen/tollgate/v1/live_pb.js";
export * from "./gen/tollgate/v1/override_pb.js";
export * from "./gen/tollgate/v1/ratelimit_pb.js";
export * from "./gen/tollgate/v1/tollgate_service_pb.js";
export * from "./gen/tollgate/v1/usage_report_pb.js";
export type { TrustProxy } from "./middleware/client-ip.js";
export type {
  Outcome,
  TollgateContext,
  TollgateLog,
  TollgateMiddlewareOptions,
  TollgateRouteOptions,
} from "./middleware/decide.js";
export { PROBLEM_CONTENT_TYPE, type Problem, QUOTA_EXCEEDED_TYPE } from "./middleware/problem.js";
export { RETRY_SAFE, type RetryOptions } from "./retry-policy.js";
export { DEFAULT_SERVER, resolveSettings } from "./settings.js";
