/**
 * Envoy's rate limit quota service (RLQS), StreamRateLimitQuotas: every usage
 * report on the stream is answered with one action per bucket it names, in
 * the report's order: a quota assignment for a bucket the policy's `rlqs`
 * section knows (ratelimit/rlqs-session.ts), `abandon_action` otherwise.
 * A malformed report (too many buckets, over-long keys or values) ends the
 * stream with INVALID_ARGUMENT naming the field.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type {
  BucketId,
  RateLimitQuotaResponse_BucketAction,
  RateLimitQuotaUsageReports,
} from "../gen/envoy/service/rate_limit_quota/v3/rlqs_pb.js";
import {
  RateLimitQuotaResponse_BucketActionSchema,
  RateLimitQuotaResponseSchema,
  type RateLimitQuotaService,
} from "../gen/envoy/service/rate_limit_quota/v3/rlqs_pb.js";
import { RateLimitStrategy_BlanketRule } from "../gen/envoy/type/v3/ratelimit_strategy_pb.js";
import type { Logger } from "../observability/logger.js";
import type { Policy } from "../policy/policy.js";
import { matchRlqsBucket, RLQS_BOUNDS } from "../policy/rlqs-rules.js";
import type { RateLimitStore } from "../ratelimit/rate-limit-store.js";
import { REFILL_INTERVAL_S, type RlqsAction, RlqsSession } from "../ratelimit/rlqs-session.js";
import type { Handlers } from "./call-context.js";
import { Violations } from "./validation.js";

/** Distinct bucket ids one stream may hold units of. */
export const RLQS_BUCKETS_PER_STREAM_MAX = 10_000;

/** Options of createRlqsService. */
export interface RlqsServiceOptions {
  /** The rate-limit store (on Redis: behind the store breaker). */
  store: RateLimitStore;
  policy: () => Policy;
  /** The fail mode of a request matching no endpoint (policy default, else the setting). */
  failMode: () => "open" | "closed";
  log: Logger;
}

/** The RateLimitQuotaService handlers. */
export function createRlqsService(o: RlqsServiceOptions): Handlers<typeof RateLimitQuotaService> {
  return {
    async *streamRateLimitQuotas(reports) {
      const session = new RlqsSession({ store: o.store, failMode: o.failMode });
      let domain: string | undefined;
      try {
        for await (const report of reports) {
          validate(report);
          // Envoy names the domain in the first report; the stream keeps it.
          domain ??= report.domain;
          if (report.bucketQuotaUsages.length === 0) continue;
          const policy = o.policy();
          const actions: RateLimitQuotaResponse_BucketAction[] = [];
          for (const usage of report.bucketQuotaUsages) {
            const id = usage.bucketId?.bucket ?? {};
            const key = canonical(id);
            const match = matchRlqsBucket(policy.rlqs, domain, id);
            if (match && session.size >= RLQS_BUCKETS_PER_STREAM_MAX && !session.has(key)) {
              throw new ConnectError(
                `a stream holds at most ${RLQS_BUCKETS_PER_STREAM_MAX} buckets`,
                Code.ResourceExhausted,
              );
            }
            const allowed = Number(usage.numRequestsAllowed);
            const action = await session.report(key, match, allowed);
            actions.push(toBucketAction(usage.bucketId, action));
          }
          yield create(RateLimitQuotaResponseSchema, { bucketAction: actions });
        }
      } finally {
        await session.close().catch((err: unknown) => o.log.warn({ err }, "rlqs: close failed"));
      }
    },
  };
}

/** Bounds of one report; throws INVALID_ARGUMENT naming the fields. */
function validate(r: RateLimitQuotaUsageReports): void {
  const v = new Violations();
  v.length("domain", r.domain, 0, RLQS_BOUNDS.domainMaxBytes);
  if (r.bucketQuotaUsages.length > RLQS_BOUNDS.usagesPerReportMax) {
    v.add("bucket_quota_usages", `must have at most ${RLQS_BOUNDS.usagesPerReportMax} entries`);
  } else {
    r.bucketQuotaUsages.forEach((u, i) => {
      const field = `bucket_quota_usages[${i}].bucket_id.bucket`;
      const id = u.bucketId?.bucket ?? {};
      const keys = Object.keys(id);
      if (keys.length === 0) v.add(field, "must have 1.. entries");
      v.map(
        field,
        id,
        RLQS_BOUNDS.matchKeysMax,
        RLQS_BOUNDS.keyMaxBytes,
        RLQS_BOUNDS.valueMaxBytes,
      );
    });
  }
  v.throwIfAny();
}

/** A bucket id's entries in key order, as one string: its identity on the stream. */
function canonical(id: Record<string, string>): string {
  return JSON.stringify(
    Object.keys(id)
      .sort()
      .map((k) => [k, id[k]]),
  );
}

function duration(ms: number) {
  return { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
}

function toBucketAction(
  bucketId: BucketId | undefined,
  a: RlqsAction,
): RateLimitQuotaResponse_BucketAction {
  const id = bucketId ?? { bucket: {} };
  if (a.kind === "abandon") {
    return create(RateLimitQuotaResponse_BucketActionSchema, {
      bucketId: id,
      bucketAction: { case: "abandonAction", value: {} },
    });
  }
  const strategy =
    a.kind === "tokens"
      ? {
          case: "tokenBucket" as const,
          value: {
            maxTokens: a.tokens,
            // See rlqs-session.ts: a refill this slow keeps one assignment at max_tokens.
            tokensPerFill: 1,
            fillInterval: duration(REFILL_INTERVAL_S * 1000),
          },
        }
      : {
          case: "blanketRule" as const,
          value:
            a.kind === "deny"
              ? RateLimitStrategy_BlanketRule.DENY_ALL
              : RateLimitStrategy_BlanketRule.ALLOW_ALL,
        };
  return create(RateLimitQuotaResponse_BucketActionSchema, {
    bucketId: id,
    bucketAction: {
      case: "quotaAssignmentAction",
      value: { assignmentTimeToLive: duration(a.ttlMs), rateLimitStrategy: { strategy } },
    },
  });
}
