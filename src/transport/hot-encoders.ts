/**
 * Hand-written protobuf encoders for the responses of the hottest unary RPCs
 * (Authorize, CheckRateLimit; Envoy's Check and ShouldRateLimit in
 * hot-encoders-envoy.ts): the reflective toBinary walks descriptors per field,
 * these walk the known fields directly (wire primitives: hot-wire.ts).
 *
 * The output is byte-identical to protobuf-es's toBinary (the tests assert it
 * on random messages): fields in field-number order, proto3 implicit-presence
 * fields omitted at their zero value, message fields written when set, map
 * entries always with key (1) and value (2), unknown fields last. Each message
 * has a size function (the body's length, recording nested lengths) and a
 * write function that mirrors it field for field: they must stay in step.
 */
import type { DescMessage } from "@bufbuild/protobuf";
import type { Header } from "../gen/tollgate/v1/common_pb.js";
import type { CreditPlan, CreditsState } from "../gen/tollgate/v1/credits_pb.js";
import type { Identity } from "../gen/tollgate/v1/key_pb.js";
import type { LimitStatus, RateLimitResult } from "../gen/tollgate/v1/ratelimit_pb.js";
import type {
  AuthorizeResponse,
  CheckRateLimitResponse,
  KeyHints,
} from "../gen/tollgate/v1/tollgate_service_pb.js";
import {
  sizeCheckResponse,
  sizeRateLimitResponse,
  writeCheckResponse,
  writeRateLimitResponse,
} from "./hot-encoders-envoy.js";
import {
  HotWire,
  int32Size,
  int64Size,
  LEN,
  sizeNested,
  sizeSecondsNanos,
  tag,
  uint32Size,
  uint64Size,
  unknownSize,
  VARINT,
  varintSize,
  writeNested,
  writeSecondsNanos,
} from "./hot-wire.js";

// tollgate.v1.Header: name = 1, value = 2.
function sizeHeader(w: HotWire, m: Header): number {
  let n = 0;
  if (m.name !== "") n += 1 + w.str(m.name);
  if (m.value !== "") n += 1 + w.str(m.value);
  return n + unknownSize(m.$unknown);
}
function writeHeader(w: HotWire, m: Header): void {
  w.strField(tag(1, LEN), m.name);
  w.strField(tag(2, LEN), m.value);
  w.unknown(m.$unknown);
}

// tollgate.v1.Identity: key_id 1, owner 2, tier 3, scopes 4 (repeated),
// metadata 5 (map<string, string>), environment 6.
/**
 * Encoded bodies of frozen Identity messages: services/convert.ts memoises a
 * frozen Identity per key record, so a cached key's identity is encoded once,
 * then copied into each response. An unfrozen Identity is encoded each time
 * (it might change). Entries live as long as their message.
 */
const identityBodies = new WeakMap<Identity, Buffer>();
/** The wire of those one-off encodes (the response's own wire is mid-encode then). */
const identityWire = new HotWire();

function frozenIdentityBody(m: Identity): Buffer | undefined {
  if (!Object.isFrozen(m)) return undefined;
  let body = identityBodies.get(m);
  if (body === undefined) {
    identityWire.begin();
    identityWire.alloc(sizeIdentity(identityWire, m));
    writeIdentity(identityWire, m);
    body = identityWire.finish();
    identityBodies.set(m, body);
  }
  return body;
}

function sizeIdentity(w: HotWire, m: Identity): number {
  let n = 0;
  if (m.keyId !== "") n += 1 + w.str(m.keyId);
  if (m.owner !== "") n += 1 + w.str(m.owner);
  if (m.tier !== "") n += 1 + w.str(m.tier);
  for (const s of m.scopes) n += 1 + w.str(s);
  for (const k of Object.keys(m.metadata)) {
    // An entry is a message: key (1) and value (2), written even when empty.
    const slot = w.open();
    const entry = 2 + w.str(k) + w.str(m.metadata[k] as string);
    n += 1 + w.close(slot, entry);
  }
  if (m.environment !== "") n += 1 + w.str(m.environment);
  return n + unknownSize(m.$unknown);
}
function writeIdentity(w: HotWire, m: Identity): void {
  w.strField(tag(1, LEN), m.keyId);
  w.strField(tag(2, LEN), m.owner);
  w.strField(tag(3, LEN), m.tier);
  for (const s of m.scopes) {
    w.varint(tag(4, LEN));
    w.string(s);
  }
  for (const k of Object.keys(m.metadata)) {
    w.varint(tag(5, LEN));
    w.len();
    w.varint(tag(1, LEN));
    w.string(k);
    w.varint(tag(2, LEN));
    w.string(m.metadata[k] as string);
  }
  w.strField(tag(6, LEN), m.environment);
  w.unknown(m.$unknown);
}

// tollgate.v1.KeyHints: expires_soon 1, expire_time 2, in_grace_period 3,
// grace_end_time 4, rotation_due 5.
function sizeHints(w: HotWire, m: KeyHints): number {
  let n = 0;
  if (m.expiresSoon) n += 2;
  if (m.expireTime !== undefined) n += sizeNested(w, m.expireTime, sizeSecondsNanos);
  if (m.inGracePeriod) n += 2;
  if (m.graceEndTime !== undefined) n += sizeNested(w, m.graceEndTime, sizeSecondsNanos);
  if (m.rotationDue) n += 2;
  return n + unknownSize(m.$unknown);
}
function writeHints(w: HotWire, m: KeyHints): void {
  w.trueField(tag(1, VARINT), m.expiresSoon);
  if (m.expireTime !== undefined) writeNested(w, tag(2, LEN), m.expireTime, writeSecondsNanos);
  w.trueField(tag(3, VARINT), m.inGracePeriod);
  if (m.graceEndTime !== undefined) writeNested(w, tag(4, LEN), m.graceEndTime, writeSecondsNanos);
  w.trueField(tag(5, VARINT), m.rotationDue);
  w.unknown(m.$unknown);
}

// tollgate.v1.LimitStatus: name 1, by 2, kind 3, limit 4, remaining 5,
// reset 6, window 7, shadow 8, exceeded 9.
function sizeLimitStatus(w: HotWire, m: LimitStatus): number {
  let n = 0;
  if (m.name !== "") n += 1 + w.str(m.name);
  if (m.by !== 0) n += 1 + int32Size(m.by);
  if (m.kind !== 0) n += 1 + int32Size(m.kind);
  if (m.limit !== 0n) n += 1 + uint64Size(m.limit);
  if (m.remaining !== 0n) n += 1 + uint64Size(m.remaining);
  if (m.reset !== undefined) n += sizeNested(w, m.reset, sizeSecondsNanos);
  if (m.window !== undefined) n += sizeNested(w, m.window, sizeSecondsNanos);
  if (m.shadow) n += 2;
  if (m.exceeded) n += 2;
  return n + unknownSize(m.$unknown);
}
function writeLimitStatus(w: HotWire, m: LimitStatus): void {
  w.strField(tag(1, LEN), m.name);
  if (m.by !== 0) {
    w.varint(tag(2, VARINT));
    w.int32(m.by);
  }
  if (m.kind !== 0) {
    w.varint(tag(3, VARINT));
    w.int32(m.kind);
  }
  if (m.limit !== 0n) {
    w.varint(tag(4, VARINT));
    w.int64(m.limit);
  }
  if (m.remaining !== 0n) {
    w.varint(tag(5, VARINT));
    w.int64(m.remaining);
  }
  if (m.reset !== undefined) writeNested(w, tag(6, LEN), m.reset, writeSecondsNanos);
  if (m.window !== undefined) writeNested(w, tag(7, LEN), m.window, writeSecondsNanos);
  w.trueField(tag(8, VARINT), m.shadow);
  w.trueField(tag(9, VARINT), m.exceeded);
  w.unknown(m.$unknown);
}

// tollgate.v1.RateLimitResult: allowed 1, deciding 2, limits 3 (repeated),
// retry_after 4, blocked_until 5.
function sizeRateLimitResult(w: HotWire, m: RateLimitResult): number {
  let n = 0;
  if (m.allowed) n += 2;
  if (m.deciding !== undefined) n += sizeNested(w, m.deciding, sizeLimitStatus);
  for (const l of m.limits) n += sizeNested(w, l, sizeLimitStatus);
  if (m.retryAfter !== undefined) n += sizeNested(w, m.retryAfter, sizeSecondsNanos);
  if (m.blockedUntil !== undefined) n += sizeNested(w, m.blockedUntil, sizeSecondsNanos);
  return n + unknownSize(m.$unknown);
}
function writeRateLimitResult(w: HotWire, m: RateLimitResult): void {
  w.trueField(tag(1, VARINT), m.allowed);
  if (m.deciding !== undefined) writeNested(w, tag(2, LEN), m.deciding, writeLimitStatus);
  for (const l of m.limits) writeNested(w, tag(3, LEN), l, writeLimitStatus);
  if (m.retryAfter !== undefined) writeNested(w, tag(4, LEN), m.retryAfter, writeSecondsNanos);
  if (m.blockedUntil !== undefined) writeNested(w, tag(5, LEN), m.blockedUntil, writeSecondsNanos);
  w.unknown(m.$unknown);
}

// tollgate.v1.CreditPlan: amount 1, refill 2, refill_day 3, mode 4, cap 5.
function sizeCreditPlan(_w: HotWire, m: CreditPlan): number {
  let n = 0;
  if (m.amount !== 0n) n += 1 + uint64Size(m.amount);
  if (m.refill !== 0) n += 1 + int32Size(m.refill);
  if (m.refillDay !== 0) n += 1 + uint32Size(m.refillDay);
  if (m.mode !== 0) n += 1 + int32Size(m.mode);
  if (m.cap !== 0n) n += 1 + uint64Size(m.cap);
  return n + unknownSize(m.$unknown);
}
function writeCreditPlan(w: HotWire, m: CreditPlan): void {
  if (m.amount !== 0n) {
    w.varint(tag(1, VARINT));
    w.int64(m.amount);
  }
  if (m.refill !== 0) {
    w.varint(tag(2, VARINT));
    w.int32(m.refill);
  }
  if (m.refillDay !== 0) {
    w.varint(tag(3, VARINT));
    w.varint(m.refillDay);
  }
  if (m.mode !== 0) {
    w.varint(tag(4, VARINT));
    w.int32(m.mode);
  }
  if (m.cap !== 0n) {
    w.varint(tag(5, VARINT));
    w.int64(m.cap);
  }
  w.unknown(m.$unknown);
}

// tollgate.v1.CreditsState: plan 1, own_plan 2, balance 3 (int64), next_refill_time 4.
function sizeCreditsState(w: HotWire, m: CreditsState): number {
  let n = 0;
  if (m.plan !== undefined) n += sizeNested(w, m.plan, sizeCreditPlan);
  if (m.ownPlan) n += 2;
  if (m.balance !== 0n) n += 1 + int64Size(m.balance);
  if (m.nextRefillTime !== undefined) n += sizeNested(w, m.nextRefillTime, sizeSecondsNanos);
  return n + unknownSize(m.$unknown);
}
function writeCreditsState(w: HotWire, m: CreditsState): void {
  if (m.plan !== undefined) writeNested(w, tag(1, LEN), m.plan, writeCreditPlan);
  w.trueField(tag(2, VARINT), m.ownPlan);
  if (m.balance !== 0n) {
    w.varint(tag(3, VARINT));
    w.int64(m.balance);
  }
  if (m.nextRefillTime !== undefined)
    writeNested(w, tag(4, LEN), m.nextRefillTime, writeSecondsNanos);
  w.unknown(m.$unknown);
}

// tollgate.v1.AuthorizeResponse: allowed 1, reason 2, http_status 3,
// identity 4, response_headers 5, decision_id 6, hints 7, message 8,
// endpoint 9, missing_scopes 10, rate_limit 11, decided_locally 12, credits 13.
function sizeAuthorize(w: HotWire, m: AuthorizeResponse): number {
  let n = 0;
  if (m.allowed) n += 2;
  if (m.reason !== 0) n += 1 + int32Size(m.reason);
  if (m.httpStatus !== 0) n += 1 + uint32Size(m.httpStatus);
  if (m.identity !== undefined) {
    const body = frozenIdentityBody(m.identity);
    n +=
      body === undefined
        ? sizeNested(w, m.identity, sizeIdentity)
        : 1 + varintSize(body.length) + body.length;
  }
  for (const h of m.responseHeaders) n += sizeNested(w, h, sizeHeader);
  if (m.decisionId !== "") n += 1 + w.str(m.decisionId);
  if (m.hints !== undefined) n += sizeNested(w, m.hints, sizeHints);
  if (m.message !== "") n += 1 + w.str(m.message);
  if (m.endpoint !== "") n += 1 + w.str(m.endpoint);
  for (const s of m.missingScopes) n += 1 + w.str(s);
  if (m.rateLimit !== undefined) n += sizeNested(w, m.rateLimit, sizeRateLimitResult);
  if (m.decidedLocally) n += 2;
  if (m.credits !== undefined) n += sizeNested(w, m.credits, sizeCreditsState);
  return n + unknownSize(m.$unknown);
}
function writeAuthorize(w: HotWire, m: AuthorizeResponse): void {
  w.trueField(tag(1, VARINT), m.allowed);
  if (m.reason !== 0) {
    w.varint(tag(2, VARINT));
    w.int32(m.reason);
  }
  if (m.httpStatus !== 0) {
    w.varint(tag(3, VARINT));
    w.varint(m.httpStatus);
  }
  if (m.identity !== undefined) {
    const body = frozenIdentityBody(m.identity);
    if (body === undefined) writeNested(w, tag(4, LEN), m.identity, writeIdentity);
    else {
      w.varint(tag(4, LEN));
      w.bytes(body);
    }
  }
  for (const h of m.responseHeaders) writeNested(w, tag(5, LEN), h, writeHeader);
  w.strField(tag(6, LEN), m.decisionId);
  if (m.hints !== undefined) writeNested(w, tag(7, LEN), m.hints, writeHints);
  w.strField(tag(8, LEN), m.message);
  w.strField(tag(9, LEN), m.endpoint);
  for (const s of m.missingScopes) {
    w.varint(tag(10, LEN));
    w.string(s);
  }
  if (m.rateLimit !== undefined) writeNested(w, tag(11, LEN), m.rateLimit, writeRateLimitResult);
  w.trueField(tag(12, VARINT), m.decidedLocally);
  if (m.credits !== undefined) writeNested(w, tag(13, LEN), m.credits, writeCreditsState);
  w.unknown(m.$unknown);
}

// tollgate.v1.CheckRateLimitResponse: allowed 1, reason 2, result 3,
// response_headers 4, decision_id 5, http_status 6, decided_locally 7, credits 8.
function sizeCheckRateLimit(w: HotWire, m: CheckRateLimitResponse): number {
  let n = 0;
  if (m.allowed) n += 2;
  if (m.reason !== 0) n += 1 + int32Size(m.reason);
  if (m.result !== undefined) n += sizeNested(w, m.result, sizeRateLimitResult);
  for (const h of m.responseHeaders) n += sizeNested(w, h, sizeHeader);
  if (m.decisionId !== "") n += 1 + w.str(m.decisionId);
  if (m.httpStatus !== 0) n += 1 + uint32Size(m.httpStatus);
  if (m.decidedLocally) n += 2;
  if (m.credits !== undefined) n += sizeNested(w, m.credits, sizeCreditsState);
  return n + unknownSize(m.$unknown);
}
function writeCheckRateLimit(w: HotWire, m: CheckRateLimitResponse): void {
  w.trueField(tag(1, VARINT), m.allowed);
  if (m.reason !== 0) {
    w.varint(tag(2, VARINT));
    w.int32(m.reason);
  }
  if (m.result !== undefined) writeNested(w, tag(3, LEN), m.result, writeRateLimitResult);
  for (const h of m.responseHeaders) writeNested(w, tag(4, LEN), h, writeHeader);
  w.strField(tag(5, LEN), m.decisionId);
  if (m.httpStatus !== 0) {
    w.varint(tag(6, VARINT));
    w.varint(m.httpStatus);
  }
  w.trueField(tag(7, VARINT), m.decidedLocally);
  if (m.credits !== undefined) writeNested(w, tag(8, LEN), m.credits, writeCreditsState);
  w.unknown(m.$unknown);
}

/** Encodes one message of a known type to its binary form. */
export type HotEncoder = (message: unknown) => Buffer;

/** The plain encoder and the gRPC-framed one of a message type. */
interface EncoderPair {
  plain: HotEncoder;
  framed: HotEncoder;
}

function encoder<T>(
  wire: HotWire,
  size: (w: HotWire, m: T) => number,
  write: (w: HotWire, m: T) => void,
): EncoderPair {
  const encode = (message: unknown, grpcFrame: boolean): Buffer => {
    const m = message as T;
    wire.begin();
    wire.alloc(size(wire, m), grpcFrame);
    write(wire, m);
    return wire.finish();
  };
  return { plain: (m) => encode(m, false), framed: (m) => encode(m, true) };
}

/**
 * The hand encoders by message type name. The caller must pass messages of
 * that type (the handlers' outputs, as grpc-js hands them to
 * responseSerialize); like toBinary, an encoder throws on an out-of-range
 * integer.
 */
export function createHotEncoders(): {
  /** The hand encoder of `desc`, or undefined (use toBinary). */
  forSchema(desc: DescMessage): HotEncoder | undefined;
  /** The hand encoder of `desc` writing a whole gRPC message frame, or undefined. */
  framedForSchema(desc: DescMessage): HotEncoder | undefined;
} {
  // One wire for all: encodes are synchronous and never interleave.
  const wire = new HotWire();
  const byType = new Map<string, EncoderPair>([
    ["tollgate.v1.AuthorizeResponse", encoder(wire, sizeAuthorize, writeAuthorize)],
    ["tollgate.v1.CheckRateLimitResponse", encoder(wire, sizeCheckRateLimit, writeCheckRateLimit)],
    ["envoy.service.auth.v3.CheckResponse", encoder(wire, sizeCheckResponse, writeCheckResponse)],
    [
      "envoy.service.ratelimit.v3.RateLimitResponse",
      encoder(wire, sizeRateLimitResponse, writeRateLimitResponse),
    ],
  ]);
  return {
    forSchema: (desc) => byType.get(desc.typeName)?.plain,
    framedForSchema: (desc) => byType.get(desc.typeName)?.framed,
  };
}
