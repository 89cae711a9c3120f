/**
 * The policy's `notifications` section: when a quota or credit balance crossing
 * a threshold, exhausted credits, a key close to its expiry or a secret due
 * for rotation raises an alert (sent to the detection section's webhooks).
 * Strict like the rest of the policy: an unknown field, a threshold out of
 * 1..100 or named twice, or a limit that is no quota is refused with its path.
 */
import { z } from "zod";
import { SEVERITIES } from "./severity.js";

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Percentages of a bucket's capacity used: integers 1..100, each at most once. */
export const thresholdList = z
  .array(
    z
      .number()
      .int("must be a whole percentage")
      .min(1, "must be at least 1 (percent)")
      .max(100, "must be at most 100 (percent)"),
  )
  .max(10, "at most 10 thresholds")
  .superRefine((list, ctx) => {
    list.forEach((t, i) => {
      if (list.indexOf(t) !== i)
        ctx.addIssue({ code: "custom", path: [i], message: `threshold ${t} is listed twice` });
    });
  });

/** The `notifications` section. */
export const notificationSchema = z.strictObject({
  /** Quota limits (calendar windows): percent used at which to notify. */
  quota: z
    .strictObject({
      /** For every quota limit without a list of its own. */
      thresholds: thresholdList.default([]),
      /** Per limit name: its own list (replaces `thresholds` for it; `[]` silences it). */
      limits: z
        .record(z.string().regex(NAME, "must be a limit name"), thresholdList)
        .refine((m) => Object.keys(m).length <= 64, "at most 64 limits")
        .default({}),
    })
    .default({ thresholds: [], limits: {} }),
  /** Credit balances: percent of the balance's capacity spent at which to notify. */
  credits: z.strictObject({ thresholds: thresholdList.default([]) }).default({ thresholds: [] }),
  /** Notify when a key's credit balance reaches zero. */
  credits_exhausted: z.boolean().default(false),
  /** Notify when a key expires within this many days (unset: never). */
  key_expiry_days: z
    .number()
    .int("must be a whole number of days")
    .min(1, "must be at least 1 day")
    .max(365, "must be at most 365 days")
    .optional(),
  /** Notify when a key's secret is older than TOLLGATE_ROTATION_AGE_S. */
  rotation_due: z.boolean().default(false),
  /** Severity of these alerts (webhooks filter on it with min_severity). */
  severity: z.enum(SEVERITIES).default("medium"),
});

/** The section as parsed. */
export type NotificationFile = z.infer<typeof notificationSchema>;
