/**
 * The request fields Authorize and CheckRateLimit share (method, path,
 * client_ip, endpoint, cost): validated once, turned into the facts the
 * decision engine takes. One function so the two doors cannot drift apart in
 * bounds, messages or the endpoint rule; likewise the subject fields
 * (key_id, subject, tier) CheckRateLimit and ReportUsage share.
 */
import { resolveEndpoint } from "../decision/endpoint-rule.js";
import type { ClientIp } from "../decision/facts.js";
import { normalisePath } from "../policy/path-normaliser.js";
import type { Endpoint, Policy } from "../policy/policy.js";
import { normaliseIp } from "../subjects/ip-address.js";
import { INPUT_BOUNDS as B, INPUT_PATTERNS } from "../util/input-bounds.js";
import { type Violations, validNames } from "./validation.js";

/** The shared fields, as both request messages carry them. */
export interface RequestFields {
  method: string;
  path: string;
  clientIp: string;
  endpoint: string;
  cost: number;
}

/** What the shared fields tell the engine. */
export interface RequestFieldFacts {
  /** The client IP, parsed once; undefined when none was sent (or it was invalid). */
  clientIp: ClientIp | undefined;
  /** The endpoint by the one rule (explicit name, else matched); undefined when none. */
  endpoint: Endpoint | undefined;
}

const METHOD = /^[A-Za-z]{1,16}$/;

/**
 * Adds a violation for each bad subject field of a CheckRateLimit-shaped
 * request (CheckRateLimit, ReportUsage): `key_id` (bounded, a key id's
 * pattern), `subject` (bounded) and `tier` (a tier of `policy`).
 */
export function checkSubjectFields(
  v: Violations,
  policy: Policy,
  req: { keyId: string; subject: string; tier: string },
): void {
  v.length("key_id", req.keyId, 0, B.keyIdMaxBytes);
  if (req.keyId !== "" && Buffer.byteLength(req.keyId) <= B.keyIdMaxBytes)
    v.pattern("key_id", req.keyId, INPUT_PATTERNS.keyId, "a key id");
  v.length("subject", req.subject, 0, B.subjectMaxBytes);
  v.length("tier", req.tier, 0, B.tierMaxBytes);
  if (req.tier !== "" && !policy.tiers.has(req.tier))
    v.add("tier", `must be a tier of the policy: ${validNames(policy.tiers.keys())}`);
}

/**
 * Adds a violation for each bad shared field to `v` and returns the facts.
 * @param pathDefault the path a request without one is decided as (Authorize:
 *   "/"; CheckRateLimit: none, so no endpoint is matched by path)
 */
export function requestFieldFacts(
  v: Violations,
  policy: Policy,
  req: RequestFields,
  pathDefault: string | undefined,
): RequestFieldFacts {
  v.length("method", req.method, 0, B.methodMaxBytes);
  if (req.method !== "") v.pattern("method", req.method, METHOD, "an HTTP method token");
  v.length("path", req.path, 0, B.pathMaxBytes);
  v.length("client_ip", req.clientIp, 0, B.clientIpMaxBytes);
  const clientIp = req.clientIp === "" ? undefined : normaliseIp(req.clientIp);
  if (req.clientIp !== "" && !clientIp) v.add("client_ip", "must be an IPv4 or IPv6 address");
  v.length("endpoint", req.endpoint, 0, B.endpointMaxBytes);
  if (req.cost > B.maxCost) v.add("cost", `must be 0..${B.maxCost}`);
  let path = pathDefault;
  if (req.path !== "") {
    const n = normalisePath(req.path);
    if (n.ok) path = n.path;
    else v.add("path", n.error);
  }
  const resolved = resolveEndpoint(policy, req.endpoint, req.method, path);
  if ("unknown" in resolved) {
    const names = validNames(policy.endpoints.map((x) => x.name));
    v.add("endpoint", `must name an endpoint of the policy: ${names}`);
    return { clientIp, endpoint: undefined };
  }
  return { clientIp, endpoint: resolved.endpoint };
}
