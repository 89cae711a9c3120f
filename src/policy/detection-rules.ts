/**
 * Compiled detection rules and webhooks: the policy's `detection` section in
 * the shape the engine uses (durations in ms, sets for lookups).
 */

import type { DetectionFile } from "./detection-schema.js";
import type { Severity } from "./severity.js";

/** Whose events a rule counts together. */
export type RuleBy = "ip" | "key" | "owner" | "subject";

interface RuleBase {
  name: string;
  severity: Severity;
  cooldownMs: number;
  /** Block the subject for this long when the rule fires (undefined: alert only). */
  blockMs?: number;
  events: ReadonlySet<string>;
  where?: ReadonlyMap<string, ReadonlySet<string>>;
}

/** ≥ count events within the window from one subject. */
export interface ThresholdRule extends RuleBase {
  kind: "threshold";
  by: RuleBy;
  count: number;
  withinMs: number;
}

/** ≥ count distinct IPs / keys within the window for one subject. */
export interface DistinctRule extends RuleBase {
  kind: "distinct";
  by: RuleBy;
  distinct: "ip" | "key";
  count: number;
  withinMs: number;
}

/** A key used from a network not in its history. */
export interface NewSourceRule extends RuleBase {
  kind: "new_source";
  by: "key";
  ipv4Prefix: number;
  ipv6Prefix: number;
  historyMs: number;
}

/** A key's requests per bucket above factor × its moving baseline. */
export interface SpikeRule extends RuleBase {
  kind: "spike";
  by: "key";
  factor: number;
  bucketMs: number;
  /** EWMA weight of each new bucket, from the baseline's time constant. */
  alpha: number;
  minHistory: number;
  minRequests: number;
}

/** A compiled rule. */
export type DetectionRule = ThresholdRule | DistinctRule | NewSourceRule | SpikeRule;

/** A webhook as configured (the secret is resolved when the sender is built). */
export interface WebhookConfig {
  name: string;
  url: string;
  secretEnv?: string;
  secretFile?: string;
  minSeverity: Severity;
  timeoutMs: number;
  maxAttempts: number;
  backoffMs: number;
  queueSize: number;
}

/** The compiled section. */
export interface Detection {
  rules: readonly DetectionRule[];
  webhooks: readonly WebhookConfig[];
}

/** No rules, no webhooks. */
export const NO_DETECTION: Detection = { rules: [], webhooks: [] };

/** Compiles the parsed section. */
export function compileDetection(d: DetectionFile | undefined): Detection {
  if (!d) return NO_DETECTION;
  const rules = d.rules.map((r): DetectionRule => {
    const base: RuleBase = {
      name: r.name,
      severity: r.severity,
      cooldownMs: r.cooldown,
      events: new Set(r.events),
      ...(r.action !== "alert" && { blockMs: r.action.block }),
      ...(r.where && {
        where: new Map(Object.entries(r.where).map(([k, v]) => [k, new Set(v)] as const)),
      }),
    };
    switch (r.kind) {
      case "threshold":
        return { ...base, kind: "threshold", by: r.by, count: r.count, withinMs: r.within };
      case "distinct":
        return {
          ...base,
          kind: "distinct",
          by: r.by,
          distinct: r.distinct,
          count: r.count,
          withinMs: r.within,
        };
      case "new_source":
        return {
          ...base,
          kind: "new_source",
          by: "key",
          ipv4Prefix: r.ipv4_prefix,
          ipv6Prefix: r.ipv6_prefix,
          historyMs: r.history,
        };
      default:
        return {
          ...base,
          kind: "spike",
          by: "key",
          factor: r.factor,
          bucketMs: r.bucket,
          alpha: 1 - Math.exp(-r.bucket / r.baseline),
          minHistory: r.min_history,
          minRequests: r.min_requests,
        };
    }
  });
  const webhooks = d.webhooks.map(
    (w): WebhookConfig => ({
      name: w.name,
      url: w.url,
      minSeverity: w.min_severity,
      timeoutMs: w.timeout,
      maxAttempts: w.max_attempts,
      backoffMs: w.backoff,
      queueSize: w.queue_size,
      ...(w.secret_env !== undefined && { secretEnv: w.secret_env }),
      ...(w.secret_file !== undefined && { secretFile: w.secret_file }),
    }),
  );
  return { rules, webhooks };
}
