/**
 * The one rule that names the endpoint of a request, shared by every door:
 * an explicit endpoint name wins (and must exist in the policy), else the
 * first endpoint matching method + normalised path, else none.
 */
import { type Endpoint, matchEndpoint, type Policy } from "../policy/policy.js";

/** The endpoint of a request, or the explicit name the policy lacks. */
export type EndpointResolution = { endpoint: Endpoint | undefined } | { unknown: string };

/**
 * Resolves the endpoint. `normalisedPath` undefined means the request gave no
 * path (CheckRateLimit without one): then only an explicit name applies.
 */
export function resolveEndpoint(
  policy: Policy,
  name: string,
  method: string,
  normalisedPath: string | undefined,
): EndpointResolution {
  if (name !== "") {
    const endpoint = policy.endpoints.find((e) => e.name === name);
    return endpoint ? { endpoint } : { unknown: name };
  }
  if (normalisedPath === undefined) return { endpoint: undefined };
  return { endpoint: matchEndpoint(policy, method, normalisedPath) };
}
