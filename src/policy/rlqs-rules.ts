/**
 * The policy's `rlqs` section: which Envoy rate_limit_quota buckets Tollgate
 * assigns quota to, and from which limit. A bucket id (a map of key/values)
 * matches the first entry of its domain whose `match` keys are all present
 * with equal values (`"*"`: any value); the subject of its Tollgate bucket is
 * the matched key/values only, so `tenant: "*"` gives each tenant its own
 * bucket in the store, and keys the entry does not name are not part of it.
 */
import { crc32 } from "node:zlib";
import { z } from "zod";
import { subjectTag } from "../subjects/subject-tag.js";
import { duration } from "./duration.js";
import { limitCore } from "./limit-core.js";
import type { Limit } from "./policy.js";

/** Bounds of the `rlqs` section, and of the bucket ids a report may carry. */
export const RLQS_BOUNDS = {
  /** Domains in the section. */
  domainsMax: 64,
  /** A domain's length, bytes (also the longest domain a report may name). */
  domainMaxBytes: 128,
  /** Entries (buckets) per domain. */
  bucketsMax: 256,
  /** Keys of one `match` (and of one bucket id in a report). */
  matchKeysMax: 16,
  /** A bucket id key, bytes. */
  keyMaxBytes: 64,
  /** A bucket id value, bytes. */
  valueMaxBytes: 256,
  /** Bucket usages in one report. */
  usagesPerReportMax: 1000,
} as const;

const bytes = (s: string) => Buffer.byteLength(s, "utf8");

const rlqsBucketSchema = z
  .strictObject({
    /** BucketId entries to match: a value, or `"*"` for any (each value its own subject). */
    match: z
      .record(
        z
          .string()
          .min(1, "a match key must not be empty")
          .refine((k) => bytes(k) <= RLQS_BOUNDS.keyMaxBytes, {
            message: `a match key is at most ${RLQS_BOUNDS.keyMaxBytes} bytes`,
          }),
        z
          .string()
          .min(1, 'must not be empty (use "*" for any value)')
          .refine((v) => bytes(v) <= RLQS_BOUNDS.valueMaxBytes, {
            message: `must be at most ${RLQS_BOUNDS.valueMaxBytes} bytes`,
          }),
      )
      .refine((m) => Object.keys(m).length > 0, "needs at least one key")
      .refine(
        (m) => Object.keys(m).length <= RLQS_BOUNDS.matchKeysMax,
        `at most ${RLQS_BOUNDS.matchKeysMax} keys`,
      ),
    rate: z
      .strictObject({
        requests: z.number().int("must be an integer").min(0).max(1e12),
        per: duration(1, 366 * 86_400_000),
        burst: z.number().int("must be an integer").min(0).max(1e15).optional(),
      })
      .optional(),
    quota: z
      .strictObject({
        requests: z
          .number()
          .int("must be an integer")
          .min(0)
          .max(Number.MAX_SAFE_INTEGER - 1_000_000),
        per: z.enum(["day", "week", "month"]),
      })
      .optional(),
    /** Units per assignment: local_share × burst (a quota's requests), at least 1. */
    local_share: z.number().gt(0, "must be above 0").max(0.5, "must be at most 0.5").default(0.05),
    /** How long an assignment stands (Envoy's assignment_time_to_live): above Envoy's reporting_interval. */
    assignment_ttl: duration(100, 3_600_000).default(2000),
  })
  .superRefine((b, ctx) => {
    if ((b.rate === undefined) === (b.quota === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: ["rate"],
        message: "an rlqs bucket needs exactly one of rate or quota",
      });
    }
    const r = b.rate;
    if (r && (r.burst ?? r.requests) * r.per > Number.MAX_SAFE_INTEGER) {
      ctx.addIssue({
        code: "custom",
        path: ["rate", r.burst === undefined ? "requests" : "burst"],
        message: "burst × period is above 2^53: too large to count exactly",
      });
    }
  });

/** One domain of the `rlqs` section. */
export const rlqsDomainSchema = z.strictObject({
  /** RateLimitQuotaUsageReports.domain; "" matches a domain no other entry names. */
  domain: z.string().refine((d) => bytes(d) <= RLQS_BOUNDS.domainMaxBytes, {
    message: `must be at most ${RLQS_BOUNDS.domainMaxBytes} bytes`,
  }),
  buckets: z
    .array(rlqsBucketSchema)
    .min(1, "needs at least one bucket")
    .max(RLQS_BOUNDS.bucketsMax),
});

/** The `rlqs` section as parsed. */
export type RlqsDomainFile = z.infer<typeof rlqsDomainSchema>;

/** A compiled rlqs bucket entry. */
export interface RlqsBucket {
  /** `match` as pairs, in key order; value undefined: any value. */
  match: readonly { key: string; value: string | undefined }[];
  /** The limit every bucket id matching this entry is charged to (by: subject). */
  limit: Limit;
  /** Units one assignment asks the store for: local_share × burst, at least 1. */
  unitsPerAssignment: number;
  /** The assignment's time to live, ms (whole seconds). */
  ttlMs: number;
}

/** The compiled `rlqs` section: each domain's entries, in file order. */
export type RlqsDomains = ReadonlyMap<string, readonly RlqsBucket[]>;

/** Compiles the section (the schema checked every field). */
export function compileRlqs(domains: readonly RlqsDomainFile[]): RlqsDomains {
  return new Map(
    domains.map((d) => [d.domain, d.buckets.map((b, i) => compileBucket(d.domain, i, b))] as const),
  );
}

function compileBucket(
  domain: string,
  index: number,
  b: RlqsDomainFile["buckets"][number],
): RlqsBucket {
  const match = Object.keys(b.match)
    .sort()
    .map((key) => {
      const v = b.match[key] as string;
      return { key, value: v === "*" ? undefined : v };
    });
  const core = limitCore(b.rate, b.quota);
  const name = `rlqs.${domain || "*"}.${index}`;
  // Stable from the numbers (as compileLimit): changing them starts a fresh bucket.
  const fingerprint = JSON.stringify([
    "rlqs",
    domain,
    match,
    core.kind,
    core.requests,
    core.periodMs,
    core.burst,
  ]);
  const limit: Limit = {
    name,
    by: "subject",
    mode: "enforce",
    ...core,
    bucketId: `${name}.${crc32(fingerprint).toString(36)}`,
  };
  return {
    match,
    limit,
    unitsPerAssignment: Math.max(1, Math.floor(b.local_share * limit.burst)),
    ttlMs: b.assignment_ttl,
  };
}

/** An Envoy bucket id matched to an entry, with the subject tag of its store bucket. */
export interface RlqsMatch {
  bucket: RlqsBucket;
  tag: string;
}

/**
 * The entry a bucket id of `domain` matches (the domain's own entries, else
 * those of the "" domain), or undefined: an unknown bucket.
 */
export function matchRlqsBucket(
  domains: RlqsDomains,
  domain: string,
  id: ReadonlyMap<string, string> | Readonly<Record<string, string>>,
): RlqsMatch | undefined {
  const get =
    id instanceof Map ? (k: string) => id.get(k) : (k: string) => (id as Record<string, string>)[k];
  const entries = domains.get(domain) ?? domains.get("");
  if (!entries) return undefined;
  for (const bucket of entries) {
    let ok = true;
    for (const m of bucket.match) {
      const v = get(m.key);
      if (v === undefined || (m.value !== undefined && v !== m.value)) {
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    const parts = bucket.match.map(
      (m) => `${escapePart(m.key)}=${escapePart(get(m.key) as string)}`,
    );
    return { bucket, tag: subjectTag("subject", parts.join(",")) };
  }
  return undefined;
}

/** `,` `=` and `%` percent-encoded, so `k=v,k=v` names one bucket id only. */
function escapePart(s: string): string {
  return s.replace(/[%,=]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
