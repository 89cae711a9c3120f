/**
 * The `detection` section of the policy file: rules evaluated on the event flow
 * and the webhooks alerts go to. Validated with the rest of the policy (unknown
 * fields refused, every bound checked at load).
 */
import { z } from "zod";
import { duration } from "./duration.js";
import { SEVERITIES } from "./severity.js";

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const TYPE = /^[a-z0-9._-]{1,64}$/;

const DAY = 86_400_000;

/** Fields every rule has. */
const common = {
  name: z
    .string()
    .regex(NAME, "must be 1..64 letters, digits, '.', '_' or '-', starting with a letter or digit"),
  severity: z.enum(SEVERITIES).default("medium"),
  /** One alert per subject per cool-down. */
  cooldown: duration(1000, 30 * DAY).default(300_000),
  /** `alert`, or `{ block: <duration> }` to also block the subject. */
  action: z
    .union([z.literal("alert"), z.strictObject({ block: duration(1000, 30 * DAY) })])
    .default("alert"),
  /** Event types counted (`request` is every allowed request with a key). */
  events: z
    .array(
      z
        .string()
        .regex(TYPE, "must be an event type: 1..64 lower-case letters, digits, '.', '_' or '-'"),
    )
    .min(1)
    .max(16),
  /** Only events whose attributes have one of these values (attribute → values). */
  where: z
    .record(z.string().min(1).max(64), z.array(z.string().max(1024)).min(1).max(32))
    .optional(),
};

const thresholdRule = z.strictObject({
  ...common,
  kind: z.literal("threshold"),
  /** Whose events are counted together. */
  by: z.enum(["ip", "key", "owner", "subject"]),
  count: z.number().int().min(1).max(10_000),
  within: duration(1000, DAY),
});

const distinctRule = z.strictObject({
  ...common,
  kind: z.literal("distinct"),
  by: z.enum(["ip", "key", "owner", "subject"]),
  /** What is counted distinct: client IPs, or keys (key ids; unknown keys by fingerprint). */
  distinct: z.enum(["ip", "key"]),
  count: z.number().int().min(2).max(10_000),
  within: duration(1000, DAY),
});

const newSourceRule = z.strictObject({
  ...common,
  kind: z.literal("new_source"),
  events: common.events.default(["request"]),
  /** IPv4 prefix length that makes one "network" (32: each address). */
  ipv4_prefix: z.number().int().min(8).max(32).default(24),
  /** IPv6 prefix length that makes one "network". */
  ipv6_prefix: z.number().int().min(16).max(128).default(64),
  /** How long a network stays known to a key. */
  history: duration(60_000, 90 * DAY).default(30 * DAY),
});

const spikeRule = z.strictObject({
  ...common,
  kind: z.literal("spike"),
  events: common.events.default(["request"]),
  /** Fires when a bucket's requests exceed factor × the key's baseline. */
  factor: z.number().min(1.1).max(1000),
  /** Width of one counting bucket. */
  bucket: duration(1000, 3_600_000).default(60_000),
  /** Time constant of the moving baseline (an exponentially weighted average of past buckets). */
  baseline: duration(2000, 7 * DAY).default(3_600_000),
  /** Buckets of history a key needs before it can spike. */
  min_history: z.number().int().min(1).max(100_000).default(10),
  /** A bucket below this many requests never spikes (quiet keys stay quiet). */
  min_requests: z.number().int().min(1).max(1e9).default(10),
});

const webhookSchema = z
  .strictObject({
    name: z
      .string()
      .regex(
        NAME,
        "must be 1..64 letters, digits, '.', '_' or '-', starting with a letter or digit",
      ),
    url: z
      .string()
      .max(2048)
      .refine(
        (u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol),
        "must be an http(s) URL",
      ),
    /** Environment variable holding the HMAC secret. */
    secret_env: z
      .string()
      .regex(
        /^[A-Z_][A-Z0-9_]{0,127}$/,
        "must be an environment variable name: capitals, digits and '_', not starting with a digit",
      )
      .optional(),
    /** File holding the HMAC secret (a mounted Secret); wins over secret_env. */
    secret_file: z.string().min(1).max(1024).optional(),
    /** Alerts below this severity are not sent here. */
    min_severity: z.enum(SEVERITIES).default("info"),
    /** One delivery attempt's timeout. */
    timeout: duration(100, 60_000).default(5000),
    /** Attempts per alert (first try included) before it is dropped. */
    max_attempts: z.number().int().min(1).max(20).default(6),
    /** First retry delay; doubles each attempt (with full jitter), capped at 30 s. */
    backoff: duration(10, 60_000).default(500),
    /** Alerts waiting for delivery; beyond this new alerts are dropped (counted). */
    queue_size: z.number().int().min(1).max(100_000).default(1000),
  })
  .refine((w) => w.secret_env !== undefined || w.secret_file !== undefined, {
    message: "a webhook needs secret_env or secret_file (alerts are always signed)",
    path: ["secret_env"],
  });

/** The `detection` section. */
export const detectionSchema = z
  .strictObject({
    rules: z
      .array(z.discriminatedUnion("kind", [thresholdRule, distinctRule, newSourceRule, spikeRule]))
      .max(64)
      .default([]),
    webhooks: z.array(webhookSchema).max(8).default([]),
  })
  .superRefine((d, ctx) => {
    const seen = new Set<string>();
    d.rules.forEach((r, i) => {
      if (seen.has(r.name))
        ctx.addIssue({
          code: "custom",
          path: ["rules", i, "name"],
          message: `duplicate rule "${r.name}"`,
        });
      seen.add(r.name);
      const by = "by" in r ? r.by : "key";
      if (r.action !== "alert" && by === "owner")
        ctx.addIssue({
          code: "custom",
          path: ["rules", i, "action"],
          message: "an owner cannot be blocked (blocks are per key, IP or subject)",
        });
    });
    const hooks = new Set<string>();
    d.webhooks.forEach((w, i) => {
      if (hooks.has(w.name))
        ctx.addIssue({
          code: "custom",
          path: ["webhooks", i, "name"],
          message: `duplicate webhook "${w.name}"`,
        });
      hooks.add(w.name);
    });
  });

/** The section as parsed. */
export type DetectionFile = z.infer<typeof detectionSchema>;
/** One rule as parsed. */
export type RuleFile = DetectionFile["rules"][number];
/** One webhook as parsed. */
export type WebhookFile = DetectionFile["webhooks"][number];
