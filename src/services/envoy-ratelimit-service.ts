/**
 * Envoy global rate limiting (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`)
 * over the policy's `envoy_ratelimit` rules (envoyproxy/ratelimit's format).
 *
 * Every descriptor is matched to its rule; all matched limits are charged in one
 * store decision, all or none (unlike envoyproxy/ratelimit, a request denied by
 * one descriptor does not consume the others). `hits_addend` is honoured per
 * request and per descriptor; the per-descriptor value is read from field 3 of
 * the descriptor (a UInt64Value in newer Envoy APIs) even though the protos
 * shipped here predate it.
 *
 * A domain the policy marks `charge: after_response` takes Envoy's stream-done
 * call (`apply_on_stream_done`): its items (of its `limits_of` domain, else its
 * own) are force-charged by `hits_addend`, never denied, and answered OK.
 */
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { HeaderValueSchema } from "../gen/envoy/config/core/v3/base_pb.js";
import type { RateLimitDescriptor } from "../gen/envoy/extensions/common/ratelimit/v3/ratelimit_pb.js";
import {
  type RateLimitRequest,
  type RateLimitResponse,
  RateLimitResponse_Code,
  RateLimitResponse_DescriptorStatusSchema,
  RateLimitResponse_RateLimit_Unit,
  RateLimitResponse_RateLimitSchema,
  RateLimitResponseSchema,
  type RateLimitService,
} from "../gen/envoy/service/ratelimit/v3/rls_pb.js";
import { type EnvoyNode, matchDescriptor } from "../policy/envoy-rules.js";
import type { LimitItem } from "../ratelimit/rate-limit-store.js";
import { pickDenying, pickTightest } from "../ratelimit/rate-limiter.js";
import { rateLimitHeaders } from "../ratelimit/ratelimit-headers.js";
import { INPUT_BOUNDS as B, INPUT_PATTERNS } from "../util/input-bounds.js";
import type { CallContext, Handlers } from "./call-context.js";
import { durationMs, messageBuilder } from "./message-literals.js";
import type { ServiceDeps } from "./service-deps.js";
import { Violations } from "./validation.js";

const UNITS: Record<string, RateLimitResponse_RateLimit_Unit> = {
  second: RateLimitResponse_RateLimit_Unit.SECOND,
  minute: RateLimitResponse_RateLimit_Unit.MINUTE,
  hour: RateLimitResponse_RateLimit_Unit.HOUR,
  day: RateLimitResponse_RateLimit_Unit.DAY,
  month: RateLimitResponse_RateLimit_Unit.MONTH,
  year: RateLimitResponse_RateLimit_Unit.YEAR,
};
/**
 * The descriptor entry naming a Tollgate key id whose credits a request spends
 * (Envoy: a `request_headers` action on `x-tollgate-key-id`, descriptor_key
 * `tollgate_key_id`).
 */
export const CREDITS_KEY_ENTRY = "tollgate_key_id";

/** hits_addend is a cost: the same bound. */
const MAX_HITS = B.maxCost;

/** Builds the RLS service implementation. */
export function createEnvoyRateLimitService(d: ServiceDeps): Handlers<typeof RateLimitService> {
  return {
    shouldRateLimit: d.instrument("ShouldRateLimit", (req: RateLimitRequest, ctx: CallContext) =>
      shouldRateLimit(d, req, ctx),
    ),
  };
}

/** The per-descriptor hits_addend (field 3, google.protobuf.UInt64Value), if Envoy sent one. */
export function descriptorHits(desc: RateLimitDescriptor): number | undefined {
  for (const u of desc.$unknown ?? []) {
    if (u.no !== 3 || u.wireType !== WireType.LengthDelimited) continue;
    const r = new BinaryReader(u.data);
    // Skip the length prefix of the field itself, then read UInt64Value.value (field 1).
    const inner = new BinaryReader(r.bytes());
    let value = 0;
    while (inner.pos < inner.len) {
      const [no, wt] = inner.tag();
      if (no === 1 && wt === WireType.Varint) value = Number(inner.uint64());
      else inner.skip(wt);
    }
    return value;
  }
  return undefined;
}

async function shouldRateLimit(
  d: ServiceDeps,
  req: RateLimitRequest,
  ctx: CallContext,
): Promise<RateLimitResponse> {
  const started = process.hrtime.bigint();
  const v = new Violations();
  v.length("domain", req.domain, 1, 128);
  v.list_("descriptors", req.descriptors, 64, (desc, f) => {
    v.list_(`${f}.entries`, desc.entries, 32, (e, ef) => {
      v.length(`${ef}.key`, e.key, 1, 256);
      v.length(`${ef}.value`, e.value, 0, 1024);
    });
    const hits = descriptorHits(desc);
    if (hits !== undefined && hits > MAX_HITS) v.add(`${f}.hits_addend`, `must be 0..${MAX_HITS}`);
  });
  if (req.hitsAddend > MAX_HITS) v.add("hits_addend", `must be 0..${MAX_HITS}`);
  v.throwIfAny();

  const policy = d.policy();
  // An after_response domain charges its `limits_of` domain's buckets (or its own).
  const after = policy.envoyAfterResponse.get(req.domain);
  const limitsDomain = after ?? req.domain;
  const rules = policy.envoyDomains.get(limitsDomain) ?? [];
  // A `tollgate_key_id` entry (e.g. from ext_authz's x-tollgate-key-id header)
  // names the key whose credits the request also spends.
  const named = req.descriptors.findIndex((desc) =>
    desc.entries.some((e) => e.key === CREDITS_KEY_ENTRY && INPUT_PATTERNS.keyId.test(e.value)),
  );
  const keyId = req.descriptors[named]?.entries.find((e) => e.key === CREDITS_KEY_ENTRY)?.value;
  const requestHits = req.hitsAddend || 1;
  const matched: { index: number; node: EnvoyNode }[] = [];
  const items: LimitItem[] = [];
  req.descriptors.forEach((desc, index) => {
    const node = matchDescriptor(rules, desc.entries);
    if (!node?.limit) return;
    matched.push({ index, node });
    const tag = `r:${limitsDomain}|${desc.entries.map((e) => `${e.key}=${e.value}`).join("|")}`;
    const hits = descriptorHits(desc);
    items.push({
      tag,
      limit: node.limit,
      cost: hits === undefined || hits === 0 ? requestHits : hits,
    });
  });

  const decided = await d.engine.decideDescriptors({
    items,
    cost: requestHits,
    domain: req.domain,
    afterResponse: after !== undefined,
    traceparent: ctx.requestHeader.get("traceparent") ?? undefined,
    started,
    callerTimeoutMs: ctx.timeoutMs(),
    ...(keyId !== undefined && { keyId }),
  });
  const { verdict, over } = decided;
  const statuses = req.descriptors.map(() => descriptorStatus({ code: RateLimitResponse_Code.OK }));
  matched.forEach(({ index, node }, k) => {
    const o = verdict?.outcomes[k];
    const limit = node.limit;
    if (!o || !limit) return;
    // After the response nothing is denied: a limit in debt is still OK here.
    const enforcedOver = over && o.exceeded && limit.mode !== "shadow";
    statuses[index] = descriptorStatus({
      code: enforcedOver ? RateLimitResponse_Code.OVER_LIMIT : RateLimitResponse_Code.OK,
      currentLimit: rateLimit({
        name: limit.name,
        requestsPerUnit: node.requestsPerUnit ?? limit.requests,
        unit: UNITS[node.unit ?? ""] ?? RateLimitResponse_RateLimit_Unit.UNKNOWN,
      }),
      limitRemaining: Math.max(0, Math.min(o.remaining, 0xffffffff)),
      durationUntilReset: durationMs(Math.max(0, o.resetMs)),
    });
  });
  const states = matched.flatMap(({ node }, k) =>
    node.limit && verdict?.outcomes[k] ? [{ limit: node.limit, outcome: verdict.outcomes[k] }] : [],
  );
  const credits = decided.credits;
  if (credits) {
    states.push(credits.limit);
    const o = credits.limit.outcome;
    // The credits are the descriptor that named the key: OVER_LIMIT there when exhausted.
    statuses[named] = descriptorStatus({
      code: o.exceeded ? RateLimitResponse_Code.OVER_LIMIT : RateLimitResponse_Code.OK,
      currentLimit: rateLimit({
        name: "credits",
        requestsPerUnit: Math.min(credits.limit.limit.burst, 0xffffffff),
        unit:
          credits.state.plan.refill === "daily"
            ? RateLimitResponse_RateLimit_Unit.DAY
            : credits.state.plan.refill === "monthly"
              ? RateLimitResponse_RateLimit_Unit.MONTH
              : RateLimitResponse_RateLimit_Unit.UNKNOWN,
      }),
      limitRemaining: Math.max(0, Math.min(o.remaining, 0xffffffff)),
      durationUntilReset: durationMs(Math.max(0, o.resetMs)),
    });
  }
  const exhausted = credits?.limit.outcome.exceeded === true;
  const deciding = exhausted
    ? states.length - 1
    : over
      ? pickDenying(states)
      : pickTightest(states);
  const d0 = deciding === undefined ? undefined : states[deciding]?.outcome;
  // Credits no refill covers: no Retry-After (see decision-engine.ts on 402).
  const retry = d0 && (d0.retryMs >= 0 ? d0.retryMs : exhausted ? undefined : d0.resetMs);
  const headers = rateLimitHeaders(
    states,
    deciding,
    over ? (retry ?? (exhausted ? undefined : 0)) : undefined,
  );
  return rateLimitResponse({
    overallCode: over ? RateLimitResponse_Code.OVER_LIMIT : RateLimitResponse_Code.OK,
    statuses,
    responseHeadersToAdd: headers.map(([key, value]) => headerValue({ key, value })),
    dynamicMetadata: { decision_id: decided.decisionId },
  });
}

// Builders of the answer's messages (message-literals.ts: create's result
// without its descriptor walk, several per call here).
const rateLimitResponse = messageBuilder(RateLimitResponseSchema);
const descriptorStatus = messageBuilder(RateLimitResponse_DescriptorStatusSchema);
const rateLimit = messageBuilder(RateLimitResponse_RateLimitSchema);
const headerValue = messageBuilder(HeaderValueSchema);
