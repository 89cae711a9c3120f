/**
 * Normalised request facts: what every door (Authorize, Envoy Check,
 * CheckRateLimit, HTTP forward-auth) turns its own message into before the
 * one decision is taken. Each fact is computed once, by the door, with the
 * shared rules (the client IP parsed once, the endpoint resolved once by
 * resolveEndpoint); the engine never re-derives them.
 */
import type { Endpoint } from "../policy/policy.js";

/** The doors of a decision, as metrics, logs and events name them. */
export type Door = "Authorize" | "Check" | "CheckRateLimit";

/** A normalised client address (see keys/ip-rules.ts normaliseIp). */
export interface ClientIp {
  address: string;
  family: "ipv4" | "ipv6";
}

/**
 * Who the caller claims to be:
 *  - `secret`: the presented API key (`""`: none presented; a value that can
 *    never be a key, e.g. an oversized or repeated header, is passed as
 *    MALFORMED_SECRET and answered MALFORMED_KEY without any lookup);
 *  - `key-id`: a key id (CheckRateLimit: the application authenticated already);
 *  - `anonymous`: no key at all (CheckRateLimit by IP or subject), with the tier to apply.
 */
export type Credential =
  | { kind: "secret"; secret: string }
  | { kind: "key-id"; keyId: string }
  | { kind: "anonymous"; tier: string };

/** A secret no key can match: its decision is MALFORMED_KEY with no store call. */
export const MALFORMED_SECRET = "\u0000";

/** The facts of one request. */
export interface RequestFacts {
  door: Door;
  credential: Credential;
  /** The endpoint, by the one rule (explicit name, else matched); undefined: none. */
  endpoint: Endpoint | undefined;
  /** The client address, parsed once; undefined when not given. */
  clientIp: ClientIp | undefined;
  /** A caller-chosen subject (CheckRateLimit); "" when not given. */
  subject: string;
  /** Request cost; 0: the endpoint's (or the policy default) cost. */
  cost: number;
  /** Scopes the caller requires on top of the endpoint's. */
  requiredScopes: readonly string[];
  /** Whether rate limits are charged (Authorize: apply_limits; Check: unless the route says no). */
  applyLimits: boolean;
  /** W3C traceparent of the request, for the access log. */
  traceparent: string | undefined;
  /** process.hrtime.bigint() when the door received the request (latency in the access log). */
  started: bigint;
  /**
   * How long the caller waits, ms, as it said (gRPC grpc-timeout, Connect
   * connect-timeout-ms); undefined: it did not say. Store calls give up in
   * time for the fail mode's answer to reach it (resilience/caller-deadline.ts).
   */
  callerTimeoutMs: number | undefined;
}
