import { readFile } from "node:fs/promises";
import { crc32 } from "node:zlib";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { compileDetection, type Detection } from "./detection-rules.js";
import { compileEnvoyDomain, type EnvoyNode } from "./envoy-rules.js";
import { limitCore } from "./limit-core.js";
import { compileNotifications, type Notifications } from "./notification-rules.js";
import { normalisePath } from "./path-normaliser.js";
import {
  type CreditsFile,
  type LimitFile,
  type PolicyFile,
  policySchema,
} from "./policy-schema.js";
import { compileRlqs, type RlqsDomains } from "./rlqs-rules.js";

/** What a limit counts by. */
export type LimitBy = "key" | "owner" | "ip" | "endpoint" | "subject";

/**
 * A credit plan (a tier's `credits`, or a key's own): a balance each decision
 * spends its cost from, refilled lazily by the store at the first decision of
 * a new period. See README "Credits".
 */
export interface CreditPlan {
  /** The starting balance, and what a refill sets (replace) or adds (add). */
  amount: number;
  /** When the balance refills: never, each UTC day, or each month on `refillDay`. */
  refill: "none" | "daily" | "monthly";
  /** Monthly: the UTC day of the month (1..28) a period starts on; 1 otherwise. */
  refillDay: number;
  /** `replace`: a refill sets the balance to `amount`; `add`: adds `amount` per period, up to `cap`. */
  mode: "replace" | "add";
  /** Add mode: the most a refill brings the balance to. Replace mode: `amount`. */
  cap: number;
}

/** A compiled limit. */
export interface Limit {
  name: string;
  by: LimitBy;
  /** `credits`: a key's credit balance (see creditLimit), spent in the same decision as the limits. */
  kind: "rate" | "quota" | "credits";
  mode: "enforce" | "shadow";
  /** Rate: requests per period; quota: requests per window. */
  requests: number;
  /** Rate: the period; quota: the nominal window length (for headers). */
  periodMs: number;
  /** Rate only: the burst (most at once). Quota: equals requests. */
  burst: number;
  /** Quota only. */
  window?: "day" | "week" | "month";
  /**
   * Stable id of the limit's parameters: part of its bucket key, so changing a
   * limit's numbers starts a fresh bucket instead of misreading old state.
   */
  bucketId: string;
  /** Credits only: the plan. */
  credits?: CreditPlan;
  /** `sync: batched` limits only: how allotments are taken (ratelimit/batched-store.ts). */
  batch?: BatchSync;
}

/** How a batched limit is decided in memory from allotments taken in batches. */
export interface BatchSync {
  /** Share of the burst (a quota's requests) one take asks for. */
  localShare: number;
  /** Longest unused tokens are held before they go back, ms. */
  flushMs: number;
}

/**
 * Cost units one take of a batched limit asks for: local_share × burst, at
 * least 1 (computed from the limit as it applies, so an override's burst counts).
 */
export function takeSize(l: Limit): number {
  return Math.max(1, Math.floor((l.batch?.localShare ?? 0) * l.burst));
}

/** The bucket id of every credit balance: a plan change keeps the balance (unlike a limit's numbers). */
export const CREDITS_BUCKET = "credits";

/** Nominal refill periods, ms (for RateLimit-Policy's `w`): 0 for a plan without refill. */
const REFILL_MS = { none: 0, daily: 86_400_000, monthly: 30 * 86_400_000 } as const;

/**
 * The limit item standing for a credit plan: named `credits`, by key, enforced,
 * `requests` the amount and `burst` the most the balance refills to (cap or
 * amount), so the rate-limit headers show it as a quota policy.
 */
export function creditLimit(plan: CreditPlan): Limit {
  return {
    name: "credits",
    by: "key",
    kind: "credits",
    mode: "enforce",
    requests: plan.amount,
    periodMs: REFILL_MS[plan.refill],
    burst: plan.mode === "add" ? plan.cap : plan.amount,
    bucketId: CREDITS_BUCKET,
    credits: plan,
  };
}

/**
 * The credit plan of a key: its own, else its tier's (the default tier's
 * when its tier left the policy, as for limits), else none.
 */
export function creditPlanFor(
  policy: Policy,
  tier: string,
  own: CreditPlan | undefined,
): CreditPlan | undefined {
  return own ?? (policy.tiers.get(tier) ?? policy.tiers.get(policy.defaultTier))?.credits;
}

/** Blocking settings, compiled. */
export interface Blocking {
  by: ReadonlySet<"key" | "ip" | "subject">;
  after: number;
  withinMs: number;
  durationMs: number;
  factor: number;
  maxDurationMs: number;
  forgetAfterMs: number;
}

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
  /** Cost of one request. */
  cost: number;
  /** Unset: the policy default, else the TOLLGATE_FAIL_MODE setting. */
  failMode?: "open" | "closed";
  /** Limits this endpoint adds or overrides, with the tiers they apply to (undefined: all). */
  limits: readonly { limit: Limit; tiers?: ReadonlySet<string> }[];
}

/** A validated, compiled policy. Immutable: a reload builds a new one. */
export interface Policy {
  defaultTier: string;
  tiers: ReadonlyMap<
    string,
    { description?: string; limits: readonly Limit[]; credits?: CreditPlan }
  >;
  endpoints: readonly Endpoint[];
  /** Cost and fail mode of requests matching no endpoint (fail mode unset: the setting). */
  defaults: { cost: number; failMode?: "open" | "closed" };
  blocking?: Blocking;
  /**
   * The limits of every (tier, endpoint) pair, merged once when the policy is
   * compiled (read through limitsFor, never re-merged per request).
   */
  limitTable: ReadonlyMap<string, readonly Limit[]>;
  /** Envoy global rate limit rules by domain. */
  envoyDomains: ReadonlyMap<string, readonly EnvoyNode[]>;
  /**
   * The `charge: after_response` domains, each to the domain whose rules and
   * buckets it charges (its `limits_of`, else itself).
   */
  envoyAfterResponse: ReadonlyMap<string, string>;
  /** Envoy rate_limit_quota (RLQS) buckets by domain ("" : any other domain). */
  rlqs: RlqsDomains;
  /** Detection rules and alert webhooks. */
  detection: Detection;
  /** Threshold and key-lifecycle notifications (NO_NOTIFICATIONS when the section is absent). */
  notifications: Notifications;
  /** The source text's origin, for logs. */
  source: string;
}

/** Thrown when a policy is invalid; the message names every offending field. */
export class PolicyError extends Error {
  override name = "PolicyError";
  /** Each problem as `field.path: message`, for a listing one per line; empty when the message is one. */
  readonly issues: readonly string[];
  /** What the problems are about (the file), when `issues` lists them. */
  readonly source: string | undefined;

  constructor(message: string, detail?: { source: string; issues: readonly string[] }) {
    super(message);
    this.issues = detail?.issues ?? [];
    this.source = detail?.source;
  }
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
  if (!r.success) {
    throw new PolicyError(`${source}: ${formatIssues(r.error)}`, {
      source,
      issues: issueLines(r.error),
    });
  }
  return compile(r.data, source);
}

/**
 * Reads, parses and validates a policy file. `setting` (e.g. TOLLGATE_POLICY_FILE)
 * is named when the file cannot be read, so the message says where the path came from.
 */
export async function loadPolicyFile(path: string, setting?: string): Promise<Policy> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? err;
    throw new PolicyError(`${setting ? `${setting}: ` : ""}${path}: cannot read: ${why}`);
  }
  return parsePolicy(text, path);
}

/** Formats zod issues as `field.path: message; …`. */
export function formatIssues(error: z.ZodError): string {
  return issueLines(error).join("; ");
}

/** Each zod issue as `field.path: message`. */
export function issueLines(error: z.ZodError): string[] {
  return error.issues.map(
    (i) => `${i.path.length > 0 ? i.path.join(".") : "(root)"}: ${i.message}`,
  );
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
      cost: e.cost ?? p.defaults.cost,
      ...((e.fail_mode ?? p.defaults.fail_mode) && {
        failMode: e.fail_mode ?? p.defaults.fail_mode,
      }),
      limits: e.limits.map((l) => ({
        limit: compileLimit(l),
        ...(l.tiers && { tiers: new Set(l.tiers) }),
      })),
      ...(methods && { methods }),
    };
  });
  const tiers = new Map(
    Object.entries(p.tiers).map(
      ([k, v]) =>
        [
          k,
          {
            ...(v?.description && { description: v.description }),
            limits: (v?.limits ?? []).map(compileLimit),
            ...(v?.credits && { credits: compileCredits(v.credits) }),
          },
        ] as const,
    ),
  );
  const b = p.blocking;
  const blocking: Blocking | undefined = b && {
    by: new Set(b.by),
    after: b.after,
    withinMs: b.within,
    durationMs: b.duration,
    factor: b.factor,
    maxDurationMs: b.max_duration ?? b.duration * 64,
    forgetAfterMs: b.forget_after,
  };
  return {
    defaultTier: p.default_tier,
    tiers,
    endpoints,
    limitTable: compileLimitTable(tiers, endpoints),
    source,
    defaults: {
      cost: p.defaults.cost,
      ...(p.defaults.fail_mode && { failMode: p.defaults.fail_mode }),
    },
    envoyDomains: new Map(
      p.envoy_ratelimit.map((d, i) => {
        try {
          return [
            d.domain,
            compileEnvoyDomain(d.domain, d.descriptors, `envoy_ratelimit.${i}.descriptors`),
          ] as const;
        } catch (err) {
          throw new PolicyError(`${source}: ${(err as Error).message}`);
        }
      }),
    ),
    envoyAfterResponse: new Map(
      p.envoy_ratelimit
        .filter((d) => d.charge === "after_response")
        .map((d) => [d.domain, d.limits_of ?? d.domain] as const),
    ),
    rlqs: compileRlqs(p.rlqs),
    detection: compileDetection(p.detection),
    notifications: compileNotifications(p.notifications),
    ...(blocking && { blocking }),
  };
}

/** A policy `credits` section as a plan (the schema checked every field). */
export function compileCredits(c: CreditsFile): CreditPlan {
  return {
    amount: c.amount,
    refill: c.refill,
    refillDay: c.refill_day ?? 1,
    mode: c.mode,
    cap: c.mode === "add" ? (c.cap ?? c.amount) : c.amount,
  };
}

function compileLimit(l: LimitFile): Limit {
  const base = { name: l.name, by: l.by, mode: l.mode };
  const core = limitCore(l.rate, l.quota);
  const fingerprint = JSON.stringify([core.kind, core.requests, core.periodMs, core.burst, l.by]);
  // The bucket is the same whatever the sync: switching a limit between exact
  // and batched keeps its state.
  const limit: Limit = {
    ...base,
    ...core,
    bucketId: `${l.name}.${crc32(fingerprint).toString(36)}`,
  };
  if (l.sync === "batched") {
    const b = l.batch ?? { local_share: 0.05, flush_interval: 1000 };
    limit.batch = { localShare: b.local_share, flushMs: b.flush_interval };
  }
  return limit;
}

/**
 * The limits of one decision: the tier's limits, with the endpoint's limits for
 * that tier overriding same-named ones and adding the rest. Order: tier limits
 * first (in file order), then endpoint additions. A key whose tier left the
 * policy (a reload) gets the default tier's limits, never none: limits are
 * never silently not applied. Precompiled: a map lookup per request.
 */
export function limitsFor(
  policy: Policy,
  tier: string,
  endpoint: Endpoint | undefined,
): readonly Limit[] {
  const name = endpoint?.name ?? "";
  return (
    policy.limitTable.get(limitTableKey(tier, name)) ??
    policy.limitTable.get(limitTableKey(policy.defaultTier, name)) ??
    []
  );
}

/** The same as limitsFor, as a fresh array (for listings such as check-config). */
export function effectiveLimits(
  policy: Policy,
  tier: string,
  endpoint: Endpoint | undefined,
): Limit[] {
  return [...limitsFor(policy, tier, endpoint)];
}

function limitTableKey(tier: string, endpointName: string): string {
  return `${tier}\u0000${endpointName}`;
}

/** Merges the limits of every tier with every endpoint (and with none). */
function compileLimitTable(
  tiers: Policy["tiers"],
  endpoints: readonly Endpoint[],
): Map<string, readonly Limit[]> {
  const table = new Map<string, readonly Limit[]>();
  for (const [tier, t] of tiers) {
    table.set(limitTableKey(tier, ""), t.limits);
    for (const e of endpoints) table.set(limitTableKey(tier, e.name), merge(t.limits, tier, e));
  }
  return table;
}

function merge(base: readonly Limit[], tier: string, endpoint: Endpoint): readonly Limit[] {
  const extra = endpoint.limits.filter((l) => !l.tiers || l.tiers.has(tier)).map((l) => l.limit);
  if (extra.length === 0) return base;
  const byName = new Map(extra.map((l) => [l.name, l]));
  const out = base.map((l) => byName.get(l.name) ?? l);
  for (const l of extra) if (!base.some((b) => b.name === l.name)) out.push(l);
  return out;
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

/** The fail mode of an endpoint: its own, else the policy default, else `fallback` (the setting). */
export function failModeOf(
  policy: Policy,
  endpoint: Endpoint | undefined,
  fallback: "open" | "closed",
): "open" | "closed" {
  return endpoint?.failMode ?? policy.defaults.failMode ?? fallback;
}
