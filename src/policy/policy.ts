import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { normalisePath } from "./path-normaliser.js";
import { type PolicyFile, policySchema } from "./policy-schema.js";

/** A compiled endpoint rule. */
export interface Endpoint {
  name: string;
  /** Upper-case methods, or undefined for any method. */
  methods?: ReadonlySet<string>;
  /** The normalised pattern, e.g. `/v1/orders/{id}`. */
  pattern: string;
  scopes: readonly string[];
  /** Segments of the pattern; `*` matches one segment, `**` (last only) any rest. */
  segments: readonly string[];
}

/** A validated, compiled policy. Immutable: a reload builds a new one. */
export interface Policy {
  defaultTier: string;
  tiers: ReadonlyMap<string, { description?: string }>;
  endpoints: readonly Endpoint[];
  /** The source text's origin, for logs. */
  source: string;
}

/** Thrown when a policy is invalid; the message names every offending field. */
export class PolicyError extends Error {
  override name = "PolicyError";
}

/** The policy used when no file is configured: two tiers, no endpoint rules. */
export const DEFAULT_POLICY_YAML = `version: 1
default_tier: free
tiers:
  free: { description: "default tier" }
  pro: { description: "paid tier" }
endpoints: []
`;

/** Parses and validates policy YAML; `source` names it in error messages. */
export function parsePolicy(text: string, source: string): Policy {
  let raw: unknown;
  try {
    raw = parseYaml(text, { maxAliasCount: 100 });
  } catch (err) {
    throw new PolicyError(`${source}: not valid YAML: ${(err as Error).message}`);
  }
  const r = policySchema.safeParse(raw);
  if (!r.success) throw new PolicyError(`${source}: ${formatIssues(r.error)}`);
  return compile(r.data, source);
}

/** Reads, parses and validates a policy file. */
export async function loadPolicyFile(path: string): Promise<Policy> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new PolicyError(`${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  return parsePolicy(text, path);
}

/** Formats zod issues as `field.path: message; …`. */
export function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => `${i.path.length > 0 ? i.path.join(".") : "(root)"}: ${i.message}`)
    .join("; ");
}

function compile(p: PolicyFile, source: string): Policy {
  const endpoints = p.endpoints.map((e, i): Endpoint => {
    const n = normalisePath(e.path.replace(/\{[^}/]*\}/g, "*"));
    if (!n.ok) throw new PolicyError(`${source}: endpoints.${i}.path: ${n.error}`);
    const segments = n.path === "/" ? [] : n.path.slice(1).split("/");
    const dbl = segments.indexOf("**");
    if (dbl >= 0 && dbl !== segments.length - 1) {
      throw new PolicyError(
        `${source}: endpoints.${i}.path: '**' is only allowed as the last segment`,
      );
    }
    const methods =
      e.method === "*" || (Array.isArray(e.method) && e.method.includes("*"))
        ? undefined
        : new Set(Array.isArray(e.method) ? e.method : [e.method]);
    return {
      name: e.name,
      pattern: n.path,
      scopes: e.scopes,
      segments,
      ...(methods && { methods }),
    };
  });
  const tiers = new Map(Object.entries(p.tiers).map(([k, v]) => [k, v ?? {}] as const));
  return { defaultTier: p.default_tier, tiers, endpoints, source };
}

/**
 * The first endpoint (in file order) matching a request, by method and
 * normalised path. Returns undefined when none matches.
 */
export function matchEndpoint(
  policy: Policy,
  method: string,
  normalisedPath: string,
): Endpoint | undefined {
  const m = method.toUpperCase();
  const segs = normalisedPath === "/" ? [] : normalisedPath.slice(1).split("/");
  for (const e of policy.endpoints) {
    if (e.methods && !e.methods.has(m)) continue;
    if (segmentsMatch(e.segments, segs)) return e;
  }
  return undefined;
}

function segmentsMatch(pattern: readonly string[], path: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p === "**") return true;
    const s = path[i];
    if (s === undefined) return false;
    if (p !== "*" && p !== s) return false;
  }
  return pattern.length === path.length;
}
