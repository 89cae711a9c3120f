/**
 * Messages of the rate-limit answers built as object literals. Why not
 * `create(Schema, init)`: create walks the descriptor's fields to fill
 * defaults and then copies the init in; a CheckRateLimit answer makes about
 * ten messages (the response, its result, a status per limit with two
 * durations, a header each), and create was the largest protobuf-es cost in
 * its profile. Each builder gives exactly what create gives for the same
 * init: message fields are absent unless set, as create leaves them
 * (test/unit/message-literals.test.ts holds each to create, field by field,
 * so a field added to the proto fails that test until it is added here).
 */
import { create, type DescMessage, type MessageShape, protoInt64 } from "@bufbuild/protobuf";
import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";
import type { Header, Reason } from "../gen/tollgate/v1/common_pb.js";
import type { CreditsState } from "../gen/tollgate/v1/credits_pb.js";
import type {
  LimitBy,
  LimitKind,
  LimitStatus,
  RateLimitResult,
} from "../gen/tollgate/v1/ratelimit_pb.js";
import type { CheckRateLimitResponse } from "../gen/tollgate/v1/tollgate_service_pb.js";

/** As durationFromMs (@bufbuild/protobuf/wkt): no signed zero, nanos with the sign of the whole. */
export function durationMs(ms: number): Duration {
  const sign = ms < 0 ? -1 : 1;
  const abs = Math.abs(ms);
  const seconds = Math.floor(abs / 1000);
  const nanos = (abs - seconds * 1000) * 1_000_000;
  return {
    $typeName: "google.protobuf.Duration",
    seconds: protoInt64.parse(seconds * sign),
    nanos: nanos === 0 ? 0 : nanos * sign,
  };
}

/** A tollgate.v1.Header. */
export function headerMessage(name: string, value: string): Header {
  return { $typeName: "tollgate.v1.Header", name, value };
}

/** A tollgate.v1.LimitStatus with every field set. */
export function limitStatus(f: {
  name: string;
  by: LimitBy;
  kind: LimitKind;
  limit: bigint;
  remaining: bigint;
  reset: Duration;
  window: Duration;
  shadow: boolean;
  exceeded: boolean;
}): LimitStatus {
  return {
    $typeName: "tollgate.v1.LimitStatus",
    name: f.name,
    by: f.by,
    kind: f.kind,
    limit: f.limit,
    remaining: f.remaining,
    reset: f.reset,
    window: f.window,
    shadow: f.shadow,
    exceeded: f.exceeded,
  };
}

/** A tollgate.v1.RateLimitResult; an undefined message field stays absent. */
export function rateLimitResult(f: {
  allowed: boolean;
  deciding: LimitStatus | undefined;
  limits: LimitStatus[];
  retryAfter: Duration | undefined;
  blockedUntil: Timestamp | undefined;
}): RateLimitResult {
  const m: RateLimitResult = {
    $typeName: "tollgate.v1.RateLimitResult",
    allowed: f.allowed,
    limits: f.limits,
  };
  if (f.deciding !== undefined) m.deciding = f.deciding;
  if (f.retryAfter !== undefined) m.retryAfter = f.retryAfter;
  if (f.blockedUntil !== undefined) m.blockedUntil = f.blockedUntil;
  return m;
}

/** A tollgate.v1.CheckRateLimitResponse; an undefined message field stays absent. */
export function checkRateLimitResponse(f: {
  allowed: boolean;
  reason: Reason;
  result: RateLimitResult | undefined;
  responseHeaders: Header[];
  decisionId: string;
  httpStatus: number;
  decidedLocally: boolean;
  credits: CreditsState | undefined;
}): CheckRateLimitResponse {
  const m: CheckRateLimitResponse = {
    $typeName: "tollgate.v1.CheckRateLimitResponse",
    allowed: f.allowed,
    reason: f.reason,
    responseHeaders: f.responseHeaders,
    decisionId: f.decisionId,
    httpStatus: f.httpStatus,
    decidedLocally: f.decidedLocally,
  };
  if (f.result !== undefined) m.result = f.result;
  if (f.credits !== undefined) m.credits = f.credits;
  return m;
}

/** The fields of a message of `Desc` a builder takes: already messages, undefined left unset. */
export type MessageFields<Desc extends DescMessage> = {
  [K in keyof Omit<MessageShape<Desc>, "$typeName">]?: MessageShape<Desc>[K];
};

/**
 * A builder of messages of `schema` for the wide Envoy messages, whose
 * literals would be long and break with every new field upstream: a default
 * message is made once (create), and each call copies it and sets the
 * fields given. What it gives equals `create(schema, fields)` when every
 * message-typed value is already a message (test/unit/message-literals.test.ts
 * checks it on random messages of each schema used). The default's lists and
 * maps are frozen: copies share them, so a push onto a default would throw
 * rather than reach every later answer.
 */
export function messageBuilder<Desc extends DescMessage>(
  schema: Desc,
): (fields: MessageFields<Desc>) => MessageShape<Desc> {
  const template = create(schema) as Record<string, unknown>;
  for (const v of Object.values(template))
    if (typeof v === "object" && v !== null) Object.freeze(v);
  return (fields) => {
    const m = { ...template };
    for (const k in fields) {
      const v = (fields as Record<string, unknown>)[k];
      if (v !== undefined) m[k] = v;
    }
    return m as MessageShape<Desc>;
  };
}
