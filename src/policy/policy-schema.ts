/**
 * The policy file's schema (YAML, version 1). Unknown fields are refused so a
 * typo cannot silently disable a rule; every bound below is checked at load and
 * reported with the field's path.
 */
import { z } from "zod";
import { INPUT_BOUNDS, INPUT_PATTERNS } from "../util/input-bounds.js";
import { detectionSchema } from "./detection-schema.js";
import { duration } from "./duration.js";
import { notificationSchema } from "./notification-schema.js";
import { RLQS_BOUNDS, rlqsDomainSchema } from "./rlqs-rules.js";

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const SCOPE = INPUT_PATTERNS.scope;
/** The HTTP methods an endpoint may name (RFC 9110 and PATCH), or "*" for any. */
const METHODS: ReadonlySet<string> = new Set([
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "CONNECT",
  "OPTIONS",
  "TRACE",
  "PATCH",
  "*",
]);
const METHOD_MSG = `must be an HTTP method in capitals (${[...METHODS].filter((m) => m !== "*").join(", ")}) or "*"`;
const method = z.string().refine((m) => METHODS.has(m), METHOD_MSG);
const NAME_MSG = "must be 1..64 letters, digits, '.', '_' or '-', starting with a letter or digit";

/** Largest cost a request may carry. */
export const MAX_COST = INPUT_BOUNDS.maxCost;
/**
 * Largest quota: counts plus one request's cost stay below 2^53, so every
 * comparison is exact in Lua's doubles and JavaScript numbers.
 */
export const MAX_QUOTA = Number.MAX_SAFE_INTEGER - MAX_COST;
/**
 * GCRA state is kept in integer "scaled" units (ms × requests); burst × period
 * (in ms) must stay below 2^53 for exact arithmetic. E.g. a 1 s period allows a
 * burst up to ≈9·10^12, a 1 day period up to ≈10^8. Longer allowances are quotas.
 */
export const MAX_BURST_TIMES_PERIOD_MS = Number.MAX_SAFE_INTEGER;
const MAX_PERIOD_MS = 366 * 86_400_000;

const count = (max: number) =>
  z.number().int("must be an integer").min(0, "must not be negative").max(max);

const rateSchema = z
  .strictObject({
    /** Requests (cost units) per period: the sustained rate. 0 always denies. */
    requests: count(1e12),
    /** The period, e.g. `1s`, `1m`. */
    per: duration(1, MAX_PERIOD_MS),
    /** Most requests at once; default `requests`. */
    burst: count(1e15).optional(),
  })
  .superRefine((r, ctx) => {
    const burst = r.burst ?? r.requests;
    if (burst * r.per > MAX_BURST_TIMES_PERIOD_MS) {
      ctx.addIssue({
        code: "custom",
        path: [r.burst === undefined ? "requests" : "burst"],
        message: `burst × period is ${burst} × ${r.per} ms, above 2^53: too large to count exactly; use a shorter period or a quota`,
      });
    }
  });

const quotaSchema = z.strictObject({
  /** Requests (cost units) per calendar window (UTC). 0 always denies. */
  requests: count(MAX_QUOTA),
  /** The calendar window. */
  per: z.enum(["day", "week", "month"]),
});

/**
 * How a `sync: batched` limit takes its allotments (see ratelimit/batched-store.ts):
 * `local_share` of the limit's burst (a quota's requests) per take, `flush_interval`
 * the longest a replica holds tokens it has not used before giving them back.
 */
const batchSchema = z.strictObject({
  local_share: z.number().gt(0, "must be above 0").max(0.5, "must be at most 0.5").default(0.05),
  flush_interval: duration(10, 60_000).default(1000),
});

/** One limit: a rate (GCRA) or a quota (calendar window). */
export const limitSchema = z
  .strictObject({
    name: z.string().regex(NAME, NAME_MSG),
    /** What the bucket is keyed by. */
    by: z.enum(["key", "owner", "ip", "endpoint", "subject"]),
    rate: rateSchema.optional(),
    quota: quotaSchema.optional(),
    /** `enforce` denies; `shadow` only counts and logs what it would deny. */
    mode: z.enum(["enforce", "shadow"]).default("enforce"),
    /** Endpoint limits only: the tiers it applies to (default all). */
    tiers: z.array(z.string().regex(NAME, NAME_MSG)).min(1).max(64).optional(),
    /**
     * `exact` (default): every decision is one atomic store call. `batched`:
     * decided in memory from allotments taken from the store in batches.
     */
    sync: z.enum(["exact", "batched"]).default("exact"),
    /** `sync: batched` only: its knobs (defaults: local_share 0.05, flush_interval 1s). */
    batch: batchSchema.optional(),
  })
  .superRefine((l, ctx) => {
    if ((l.rate === undefined) === (l.quota === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: ["rate"],
        message: "a limit needs exactly one of rate or quota",
      });
    }
    if (l.batch !== undefined && l.sync !== "batched") {
      ctx.addIssue({
        code: "custom",
        path: ["batch"],
        message: "batch is for sync: batched limits only",
      });
    }
  });

/** Largest credit amount, cap, balance set or top-up. */
export const MAX_CREDITS = INPUT_BOUNDS.maxCredits;

/**
 * A credit plan: `amount` to start with; `refill` none, daily (UTC midnight)
 * or monthly (on `refill_day`, 1..28, UTC); `mode` replace (the balance
 * becomes `amount`) or add (`amount` is added per period, up to `cap`).
 */
export const creditsSchema = z
  .strictObject({
    amount: count(MAX_CREDITS),
    refill: z.enum(["none", "daily", "monthly"]).default("none"),
    refill_day: z
      .number()
      .int("must be an integer")
      .min(1, "must be 1..28")
      .max(INPUT_BOUNDS.creditRefillDayMax, "must be 1..28 (every month has it)")
      .optional(),
    mode: z.enum(["replace", "add"]).default("replace"),
    cap: count(MAX_CREDITS).optional(),
  })
  .superRefine((c, ctx) => {
    const issue = (path: string, message: string) =>
      ctx.addIssue({ code: "custom", path: [path], message });
    if (c.refill_day !== undefined && c.refill !== "monthly")
      issue("refill_day", "only a monthly refill takes a refill_day");
    if (c.mode === "add" && c.refill === "none")
      issue("mode", "add needs a refill (daily or monthly): without one nothing is ever added");
    if (c.cap !== undefined && c.mode !== "add") issue("cap", "only mode add takes a cap");
    if (c.mode === "add" && c.cap === undefined)
      issue("cap", "mode add needs a cap: the most a refill brings the balance to");
    if (c.cap !== undefined && c.mode === "add" && c.cap < c.amount)
      issue("cap", `must be at least amount (${c.amount})`);
  });

/** A tier: a class of keys (plan) with default limits. */
const tierSchema = z.strictObject({
  description: z.string().max(256).optional(),
  /** Limits applied to every request of this tier (an endpoint may override one by name). */
  limits: z.array(limitSchema).max(16).default([]),
  /** The tier's credit plan (a key's own plan wins over it). */
  credits: creditsSchema.optional(),
});

/** An endpoint rule: which requests it matches and what they need. */
const endpointSchema = z.strictObject({
  name: z.string().regex(NAME, NAME_MSG),
  method: z.union([method, z.array(method).min(1).max(16)]).default("*"),
  path: z.string().min(1).max(512).startsWith("/", "must start with '/'"),
  scopes: z
    .array(z.string().regex(SCOPE, "must be a scope: 1..128 letters, digits or any of : . _ / * -"))
    .max(32)
    .default([]),
  /** Cost of one request (a request may pass its own). */
  cost: z.number().int().min(1).max(MAX_COST).optional(),
  /** What happens when the store is unreachable: decide locally (`open`) or fail (`closed`). */
  fail_mode: z.enum(["open", "closed"]).optional(),
  /** Limits added for this endpoint; one named like a tier limit overrides it here. */
  limits: z.array(limitSchema).max(16).default([]),
});

/** Automatic escalating blocks for repeat offenders. */
const blockingSchema = z.strictObject({
  /** Which subjects can be blocked. */
  by: z
    .array(z.enum(["key", "ip", "subject"]))
    .min(1)
    .max(3)
    .default(["key", "ip", "subject"]),
  /** Denials (by enforce limits) within `within` that trigger a block. */
  after: z.number().int().min(1).max(1_000_000),
  within: duration(1000, 86_400_000),
  /** First block's length. */
  duration: duration(1000, 30 * 86_400_000),
  /** Each repeat offence multiplies the length by this factor… */
  factor: z.number().min(1).max(100).default(2),
  /** …up to this maximum. */
  max_duration: duration(1000, 365 * 86_400_000).optional(),
  /** An offender is forgotten (back to the first length) after this long without a block. */
  forget_after: duration(60_000, 365 * 86_400_000).default(86_400_000),
});

/** Units of envoyproxy/ratelimit's `rate_limit` (Envoy's RateLimitResponse.RateLimit.Unit). */
export const ENVOY_UNITS = ["second", "minute", "hour", "day", "month", "year"] as const;

/**
 * A descriptor node in envoyproxy/ratelimit's YAML format: key, optional value,
 * an optional rate limit, and nested descriptors. Compatible with that service's
 * config (`detailed_metric` is accepted and ignored), so rules can be moved over as they are.
 */
export interface EnvoyDescriptorFile {
  key: string;
  value?: string | undefined;
  rate_limit?:
    | { unit: (typeof ENVOY_UNITS)[number]; requests_per_unit: number; name?: string | undefined }
    | undefined;
  shadow_mode?: boolean | undefined;
  unlimited?: boolean | undefined;
  detailed_metric?: boolean | undefined;
  descriptors?: EnvoyDescriptorFile[] | undefined;
}

const envoyDescriptorSchema: z.ZodType<EnvoyDescriptorFile> = z.lazy(() =>
  z
    .strictObject({
      key: z.string().min(1).max(128),
      value: z.string().max(256).optional(),
      rate_limit: z
        .strictObject({
          unit: z.enum(ENVOY_UNITS),
          requests_per_unit: z
            .number()
            .int("must be an integer")
            .min(0, "must not be negative")
            .max(MAX_QUOTA),
          name: z.string().max(128).optional(),
        })
        .optional(),
      shadow_mode: z.boolean().optional(),
      unlimited: z.boolean().optional(),
      detailed_metric: z.boolean().optional(),
      descriptors: z.array(envoyDescriptorSchema).max(256).optional(),
    })
    .superRefine((d, ctx) => {
      if (d.unlimited && d.rate_limit) {
        ctx.addIssue({
          code: "custom",
          path: ["unlimited"],
          message: "a descriptor is either unlimited or has a rate_limit",
        });
      }
    }),
);

/**
 * When a domain's ShouldRateLimit calls are charged: `on_request` (the
 * default) decides and charges all or none; `after_response` is Envoy's
 * stream-done call (`apply_on_stream_done`, `hits_addend` from the response):
 * charged without denying, past the limits if need be, answered OK.
 */
export const ENVOY_CHARGE_MODES = ["on_request", "after_response"] as const;

/** One Envoy rate-limit domain (envoyproxy/ratelimit's config file). */
const envoyDomainSchema = z.strictObject({
  domain: z.string().min(1).max(128),
  descriptors: z.array(envoyDescriptorSchema).max(1024).default([]),
  /** A Tollgate extension of envoyproxy/ratelimit's format (see ENVOY_CHARGE_MODES). */
  charge: z.enum(ENVOY_CHARGE_MODES).optional(),
  /**
   * With `charge: after_response`: charge the descriptors and buckets of this
   * other (`on_request`) domain, so its request-time calls see the debt.
   */
  limits_of: z.string().min(1).max(128).optional(),
});

/** The policy file, version 1. */
export const policySchema = z
  .strictObject({
    version: z.literal(1),
    default_tier: z.string().regex(NAME, NAME_MSG),
    tiers: z
      .record(
        z.string().regex(NAME, `tier names ${NAME_MSG.replace("must be", "are")}`),
        tierSchema.nullable(),
      )
      .refine((t) => Object.keys(t).length > 0, "at least one tier is required")
      .refine((t) => Object.keys(t).length <= 64, "at most 64 tiers"),
    defaults: z
      .strictObject({
        cost: z.number().int().min(1).max(MAX_COST).default(1),
        /** Unset: the TOLLGATE_FAIL_MODE setting. */
        fail_mode: z.enum(["open", "closed"]).optional(),
      })
      .default({ cost: 1 }),
    endpoints: z.array(endpointSchema).max(1024).default([]),
    blocking: blockingSchema.optional(),
    /** Rules for Envoy's global rate limit (ShouldRateLimit), in envoyproxy/ratelimit's format. */
    envoy_ratelimit: z.array(envoyDomainSchema).max(64).default([]),
    /** Quota for Envoy's rate_limit_quota filter (RLQS), by domain (see rlqs-rules.ts). */
    rlqs: z.array(rlqsDomainSchema).max(RLQS_BOUNDS.domainsMax).default([]),
    /** Detection rules and alert webhooks (see docs/events.md). */
    detection: detectionSchema.optional(),
    /** Threshold, credit and key-lifecycle notifications (see docs/alerts.md). */
    notifications: notificationSchema.optional(),
  })
  .superRefine((p, ctx) => {
    if (!(p.default_tier in p.tiers)) {
      ctx.addIssue({
        code: "custom",
        path: ["default_tier"],
        message: `"${p.default_tier}" is not a tier`,
      });
    }
    const seen = new Set<string>();
    p.endpoints.forEach((e, i) => {
      if (seen.has(e.name)) {
        ctx.addIssue({
          code: "custom",
          path: ["endpoints", i, "name"],
          message: `duplicate endpoint "${e.name}"`,
        });
      }
      seen.add(e.name);
      e.limits.forEach((l, j) => {
        for (const [k, t] of (l.tiers ?? []).entries()) {
          if (!(t in p.tiers)) {
            ctx.addIssue({
              code: "custom",
              path: ["endpoints", i, "limits", j, "tiers", k],
              message: `"${t}" is not a tier`,
            });
          }
        }
      });
      const names = new Set<string>();
      e.limits.forEach((l, j) => {
        if (names.has(l.name)) {
          ctx.addIssue({
            code: "custom",
            path: ["endpoints", i, "limits", j, "name"],
            message: `duplicate limit "${l.name}"`,
          });
        }
        names.add(l.name);
      });
    });
    const domains = new Set<string>();
    p.envoy_ratelimit.forEach((d, i) => {
      if (domains.has(d.domain)) {
        ctx.addIssue({
          code: "custom",
          path: ["envoy_ratelimit", i, "domain"],
          message: `duplicate domain "${d.domain}"`,
        });
      }
      domains.add(d.domain);
    });
    const rlqsDomains = new Set<string>();
    p.rlqs.forEach((d, i) => {
      if (rlqsDomains.has(d.domain)) {
        ctx.addIssue({
          code: "custom",
          path: ["rlqs", i, "domain"],
          message: `duplicate domain "${d.domain}"`,
        });
      }
      rlqsDomains.add(d.domain);
    });
    p.envoy_ratelimit.forEach((d, i) => {
      if (d.limits_of === undefined) return;
      const at = (field: string, message: string) =>
        ctx.addIssue({ code: "custom", path: ["envoy_ratelimit", i, field], message });
      const target = p.envoy_ratelimit.find((o) => o.domain === d.limits_of);
      if (d.charge !== "after_response") {
        at("limits_of", "only a domain with `charge: after_response` charges another's limits");
      } else if (!target || target.domain === d.domain) {
        at("limits_of", `"${d.limits_of}" is not another domain of envoy_ratelimit`);
      } else if (target.charge === "after_response") {
        at(
          "limits_of",
          `"${d.limits_of}" is charged after the response itself: name the request-time domain`,
        );
      }
      if (d.descriptors.length > 0) {
        at("descriptors", "a domain charging the limits of another has no descriptors of its own");
      }
    });
    for (const [tier, t] of Object.entries(p.tiers)) {
      const names = new Set<string>();
      (t?.limits ?? []).forEach((l, j) => {
        if (l.tiers) {
          ctx.addIssue({
            code: "custom",
            path: ["tiers", tier, "limits", j, "tiers"],
            message: "only endpoint limits take tiers",
          });
        }
        if (names.has(l.name)) {
          ctx.addIssue({
            code: "custom",
            path: ["tiers", tier, "limits", j, "name"],
            message: `duplicate limit "${l.name}"`,
          });
        }
        names.add(l.name);
      });
    }
    checkNotificationLimits(p, ctx);
  });

/** Every limit named in `notifications.quota.limits` is a quota limit of the policy. */
function checkNotificationLimits(
  p: {
    tiers: Record<string, { limits: z.infer<typeof limitSchema>[] } | null>;
    endpoints: { limits: z.infer<typeof limitSchema>[] }[];
    envoy_ratelimit: { descriptors: EnvoyDescriptorFile[] }[];
    notifications?: { quota: { limits: Record<string, number[]> } } | undefined;
  },
  ctx: z.RefinementCtx,
): void {
  const named = Object.keys(p.notifications?.quota.limits ?? {});
  if (named.length === 0) return;
  const kinds = new Map<string, Set<string>>();
  const all = [
    ...Object.values(p.tiers).flatMap((t) => t?.limits ?? []),
    ...p.endpoints.flatMap((e) => e.limits),
  ];
  const add = (name: string, kind: string) => {
    const set = kinds.get(name) ?? new Set<string>();
    set.add(kind);
    kinds.set(name, set);
  };
  for (const l of all) add(l.name, l.quota ? "quota" : "rate");
  // Envoy descriptors with a `name`: a monthly rate_limit is a quota (envoy-rules.ts).
  const walk = (nodes: readonly EnvoyDescriptorFile[]) => {
    for (const d of nodes) {
      if (d.rate_limit?.name)
        add(d.rate_limit.name, d.rate_limit.unit === "month" ? "quota" : "rate");
      walk(d.descriptors ?? []);
    }
  };
  for (const d of p.envoy_ratelimit) walk(d.descriptors);
  for (const name of named) {
    const k = kinds.get(name);
    const path = ["notifications", "quota", "limits", name];
    if (!k) ctx.addIssue({ code: "custom", path, message: `"${name}" is not a limit` });
    else if (!k.has("quota"))
      ctx.addIssue({
        code: "custom",
        path,
        message: `"${name}" is a rate limit: thresholds apply to quota limits (calendar windows)`,
      });
  }
}

/** The policy file as parsed. */
export type PolicyFile = z.infer<typeof policySchema>;
/** A credits section as parsed. */
export type CreditsFile = z.infer<typeof creditsSchema>;
/** One limit as parsed. */
export type LimitFile = z.infer<typeof limitSchema>;
