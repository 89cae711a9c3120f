/**
 * Hand encoders of Envoy's hot responses: ext_authz CheckResponse and the
 * global rate limit's RateLimitResponse (same contract as hot-encoders.ts:
 * byte-identical to toBinary, a size function and a write function in step).
 * Their dynamic metadata is a google.protobuf.Struct, held by protobuf-es as a
 * plain JSON object: it is encoded here from the JSON as toBinary would after
 * converting it (keys in Object.keys order; null as NULL_VALUE, numbers as
 * doubles, arrays as ListValue, undefined as an empty Value).
 */
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";
import type {
  HeaderValue,
  HeaderValueOption,
  QueryParameter,
} from "../gen/envoy/config/core/v3/base_pb.js";
import type {
  CheckResponse,
  DeniedHttpResponse,
  OkHttpResponse,
} from "../gen/envoy/service/auth/v3/external_auth_pb.js";
import type {
  RateLimitResponse,
  RateLimitResponse_DescriptorStatus,
  RateLimitResponse_Quota,
  RateLimitResponse_RateLimit,
} from "../gen/envoy/service/ratelimit/v3/rls_pb.js";
import type { HttpStatus } from "../gen/envoy/type/v3/http_status_pb.js";
import type { Status } from "../gen/google/rpc/status_pb.js";
import {
  type HotWire,
  I64,
  int32Size,
  LEN,
  sizeNested,
  sizeSecondsNanos,
  tag,
  uint32Size,
  unknownSize,
  VARINT,
  varintSize,
  writeNested,
  writeSecondsNanos,
} from "./hot-wire.js";

// google.protobuf.Struct: map<string, Value> fields = 1. Value: oneof kind
// { null_value 1, number_value 2, string_value 3, bool_value 4,
// struct_value 5, list_value 6 }. ListValue: repeated Value values = 1.
function sizeStruct(w: HotWire, json: JsonObject): number {
  let n = 0;
  for (const k of Object.keys(json)) {
    const slot = w.open();
    const entry = 1 + w.str(k) + sizeNested(w, json[k] as JsonValue, sizeValue);
    n += 1 + w.close(slot, entry);
  }
  return n;
}
function writeStruct(w: HotWire, json: JsonObject): void {
  for (const k of Object.keys(json)) {
    w.varint(tag(1, LEN));
    w.len();
    w.varint(tag(1, LEN));
    w.string(k);
    writeNested(w, tag(2, LEN), json[k] as JsonValue, writeValue);
  }
}
function sizeValue(w: HotWire, v: JsonValue | undefined): number {
  switch (typeof v) {
    case "number":
      return 9;
    case "string":
      return 1 + w.str(v);
    case "boolean":
      return 2;
    case "object":
      if (v === null) return 2;
      if (Array.isArray(v)) return sizeNested(w, v, sizeList);
      return sizeNested(w, v, sizeStruct);
    default:
      return 0;
  }
}
function writeValue(w: HotWire, v: JsonValue | undefined): void {
  switch (typeof v) {
    case "number":
      w.varint(tag(2, I64));
      w.double(v);
      return;
    case "string":
      w.varint(tag(3, LEN));
      w.string(v);
      return;
    case "boolean":
      w.varint(tag(4, VARINT));
      w.bool(v);
      return;
    case "object":
      if (v === null) {
        // A oneof member is written even at its zero value.
        w.varint(tag(1, VARINT));
        w.varint(0);
      } else if (Array.isArray(v)) writeNested(w, tag(6, LEN), v, writeList);
      else writeNested(w, tag(5, LEN), v, writeStruct);
      return;
  }
}
function sizeList(w: HotWire, list: JsonValue[]): number {
  let n = 0;
  for (const v of list) n += sizeNested(w, v, sizeValue);
  return n;
}
function writeList(w: HotWire, list: JsonValue[]): void {
  for (const v of list) writeNested(w, tag(1, LEN), v, writeValue);
}
/** A Struct field: JSON that is not an object is an empty Struct, as toBinary makes it. */
const asObject = (v: JsonObject): JsonObject =>
  typeof v === "object" && v !== null && !Array.isArray(v) ? v : {};

// envoy.config.core.v3.HeaderValue: key 1, value 2, raw_value 3 (bytes).
function sizeHeaderValue(w: HotWire, m: HeaderValue): number {
  let n = 0;
  if (m.key !== "") n += 1 + w.str(m.key);
  if (m.value !== "") n += 1 + w.str(m.value);
  if (m.rawValue.length > 0) n += 1 + varintSize(m.rawValue.length) + m.rawValue.length;
  return n + unknownSize(m.$unknown);
}
function writeHeaderValue(w: HotWire, m: HeaderValue): void {
  w.strField(tag(1, LEN), m.key);
  w.strField(tag(2, LEN), m.value);
  if (m.rawValue.length > 0) {
    w.varint(tag(3, LEN));
    w.bytes(m.rawValue);
  }
  w.unknown(m.$unknown);
}

// envoy.config.core.v3.HeaderValueOption: header 1, append 2 (BoolValue,
// held unwrapped), append_action 3, keep_empty_value 4.
function sizeOption(w: HotWire, m: HeaderValueOption): number {
  let n = 0;
  if (m.header !== undefined) n += sizeNested(w, m.header, sizeHeaderValue);
  // BoolValue { bool value = 1 }: empty when false.
  if (m.append !== undefined) n += m.append ? 4 : 2;
  if (m.appendAction !== 0) n += 1 + int32Size(m.appendAction);
  if (m.keepEmptyValue) n += 2;
  return n + unknownSize(m.$unknown);
}
function writeOption(w: HotWire, m: HeaderValueOption): void {
  if (m.header !== undefined) writeNested(w, tag(1, LEN), m.header, writeHeaderValue);
  if (m.append !== undefined) {
    w.varint(tag(2, LEN));
    if (m.append) {
      w.varint(2);
      w.varint(tag(1, VARINT));
      w.bool(true);
    } else w.varint(0);
  }
  if (m.appendAction !== 0) {
    w.varint(tag(3, VARINT));
    w.int32(m.appendAction);
  }
  w.trueField(tag(4, VARINT), m.keepEmptyValue);
  w.unknown(m.$unknown);
}

// envoy.config.core.v3.QueryParameter: key 1, value 2.
function sizeQuery(w: HotWire, m: QueryParameter): number {
  let n = 0;
  if (m.key !== "") n += 1 + w.str(m.key);
  if (m.value !== "") n += 1 + w.str(m.value);
  return n + unknownSize(m.$unknown);
}
function writeQuery(w: HotWire, m: QueryParameter): void {
  w.strField(tag(1, LEN), m.key);
  w.strField(tag(2, LEN), m.value);
  w.unknown(m.$unknown);
}

// google.rpc.Status: code 1, message 2, details 3 (Any: type_url 1, value 2).
function sizeStatus(w: HotWire, m: Status): number {
  let n = 0;
  if (m.code !== 0) n += 1 + int32Size(m.code);
  if (m.message !== "") n += 1 + w.str(m.message);
  for (const a of m.details) {
    const slot = w.open();
    let body = unknownSize(a.$unknown);
    if (a.typeUrl !== "") body += 1 + w.str(a.typeUrl);
    if (a.value.length > 0) body += 1 + varintSize(a.value.length) + a.value.length;
    n += 1 + w.close(slot, body);
  }
  return n + unknownSize(m.$unknown);
}
function writeStatus(w: HotWire, m: Status): void {
  if (m.code !== 0) {
    w.varint(tag(1, VARINT));
    w.int32(m.code);
  }
  w.strField(tag(2, LEN), m.message);
  for (const a of m.details) {
    w.varint(tag(3, LEN));
    w.len();
    w.strField(tag(1, LEN), a.typeUrl);
    if (a.value.length > 0) {
      w.varint(tag(2, LEN));
      w.bytes(a.value);
    }
    w.unknown(a.$unknown);
  }
  w.unknown(m.$unknown);
}

// envoy.type.v3.HttpStatus: code 1 (enum).
function sizeHttpStatus(_w: HotWire, m: HttpStatus): number {
  return (m.code !== 0 ? 1 + int32Size(m.code) : 0) + unknownSize(m.$unknown);
}
function writeHttpStatus(w: HotWire, m: HttpStatus): void {
  if (m.code !== 0) {
    w.varint(tag(1, VARINT));
    w.int32(m.code);
  }
  w.unknown(m.$unknown);
}

// envoy.service.auth.v3.DeniedHttpResponse: status 1, headers 2, body 3.
function sizeDenied(w: HotWire, m: DeniedHttpResponse): number {
  let n = 0;
  if (m.status !== undefined) n += sizeNested(w, m.status, sizeHttpStatus);
  for (const h of m.headers) n += sizeNested(w, h, sizeOption);
  if (m.body !== "") n += 1 + w.str(m.body);
  return n + unknownSize(m.$unknown);
}
function writeDenied(w: HotWire, m: DeniedHttpResponse): void {
  if (m.status !== undefined) writeNested(w, tag(1, LEN), m.status, writeHttpStatus);
  for (const h of m.headers) writeNested(w, tag(2, LEN), h, writeOption);
  w.strField(tag(3, LEN), m.body);
  w.unknown(m.$unknown);
}

// envoy.service.auth.v3.OkHttpResponse: headers 2, dynamic_metadata 3,
// headers_to_remove 5, response_headers_to_add 6,
// query_parameters_to_set 7, query_parameters_to_remove 8.
function sizeOk(w: HotWire, m: OkHttpResponse): number {
  let n = 0;
  for (const h of m.headers) n += sizeNested(w, h, sizeOption);
  if (m.dynamicMetadata !== undefined) n += sizeNested(w, asObject(m.dynamicMetadata), sizeStruct);
  for (const s of m.headersToRemove) n += 1 + w.str(s);
  for (const h of m.responseHeadersToAdd) n += sizeNested(w, h, sizeOption);
  for (const q of m.queryParametersToSet) n += sizeNested(w, q, sizeQuery);
  for (const s of m.queryParametersToRemove) n += 1 + w.str(s);
  return n + unknownSize(m.$unknown);
}
function writeOk(w: HotWire, m: OkHttpResponse): void {
  for (const h of m.headers) writeNested(w, tag(2, LEN), h, writeOption);
  if (m.dynamicMetadata !== undefined)
    writeNested(w, tag(3, LEN), asObject(m.dynamicMetadata), writeStruct);
  for (const s of m.headersToRemove) {
    w.varint(tag(5, LEN));
    w.string(s);
  }
  for (const h of m.responseHeadersToAdd) writeNested(w, tag(6, LEN), h, writeOption);
  for (const q of m.queryParametersToSet) writeNested(w, tag(7, LEN), q, writeQuery);
  for (const s of m.queryParametersToRemove) {
    w.varint(tag(8, LEN));
    w.string(s);
  }
  w.unknown(m.$unknown);
}

/** envoy.service.auth.v3.CheckResponse: status 1, denied_response 2 | ok_response 3, dynamic_metadata 4. */
export function sizeCheckResponse(w: HotWire, m: CheckResponse): number {
  let n = 0;
  if (m.status !== undefined) n += sizeNested(w, m.status, sizeStatus);
  const r = m.httpResponse;
  if (r.case === "deniedResponse") n += sizeNested(w, r.value, sizeDenied);
  else if (r.case === "okResponse") n += sizeNested(w, r.value, sizeOk);
  if (m.dynamicMetadata !== undefined) n += sizeNested(w, asObject(m.dynamicMetadata), sizeStruct);
  return n + unknownSize(m.$unknown);
}
/** Writes what sizeCheckResponse sized. */
export function writeCheckResponse(w: HotWire, m: CheckResponse): void {
  if (m.status !== undefined) writeNested(w, tag(1, LEN), m.status, writeStatus);
  const r = m.httpResponse;
  if (r.case === "deniedResponse") writeNested(w, tag(2, LEN), r.value, writeDenied);
  else if (r.case === "okResponse") writeNested(w, tag(3, LEN), r.value, writeOk);
  if (m.dynamicMetadata !== undefined)
    writeNested(w, tag(4, LEN), asObject(m.dynamicMetadata), writeStruct);
  w.unknown(m.$unknown);
}

// RateLimitResponse.RateLimit: requests_per_unit 1, unit 2, name 3 (declared first, numbered last).
function sizeRate(w: HotWire, m: RateLimitResponse_RateLimit): number {
  let n = 0;
  if (m.requestsPerUnit !== 0) n += 1 + uint32Size(m.requestsPerUnit);
  if (m.unit !== 0) n += 1 + int32Size(m.unit);
  if (m.name !== "") n += 1 + w.str(m.name);
  return n + unknownSize(m.$unknown);
}
function writeRate(w: HotWire, m: RateLimitResponse_RateLimit): void {
  if (m.requestsPerUnit !== 0) {
    w.varint(tag(1, VARINT));
    w.varint(m.requestsPerUnit);
  }
  if (m.unit !== 0) {
    w.varint(tag(2, VARINT));
    w.int32(m.unit);
  }
  w.strField(tag(3, LEN), m.name);
  w.unknown(m.$unknown);
}

// RateLimitResponse.Quota: requests 1, valid_until 2 (oneof), id 3.
function sizeQuota(w: HotWire, m: RateLimitResponse_Quota): number {
  let n = 0;
  if (m.requests !== 0) n += 1 + uint32Size(m.requests);
  if (m.expirationSpecifier.case === "validUntil")
    n += sizeNested(w, m.expirationSpecifier.value as Timestamp, sizeSecondsNanos);
  if (m.id !== "") n += 1 + w.str(m.id);
  return n + unknownSize(m.$unknown);
}
function writeQuota(w: HotWire, m: RateLimitResponse_Quota): void {
  if (m.requests !== 0) {
    w.varint(tag(1, VARINT));
    w.varint(m.requests);
  }
  if (m.expirationSpecifier.case === "validUntil")
    writeNested(w, tag(2, LEN), m.expirationSpecifier.value as Timestamp, writeSecondsNanos);
  w.strField(tag(3, LEN), m.id);
  w.unknown(m.$unknown);
}

// RateLimitResponse.DescriptorStatus: code 1, current_limit 2,
// limit_remaining 3, duration_until_reset 4, quota 5.
function sizeDescriptor(w: HotWire, m: RateLimitResponse_DescriptorStatus): number {
  let n = 0;
  if (m.code !== 0) n += 1 + int32Size(m.code);
  if (m.currentLimit !== undefined) n += sizeNested(w, m.currentLimit, sizeRate);
  if (m.limitRemaining !== 0) n += 1 + uint32Size(m.limitRemaining);
  if (m.durationUntilReset !== undefined)
    n += sizeNested(w, m.durationUntilReset as Duration, sizeSecondsNanos);
  if (m.quota !== undefined) n += sizeNested(w, m.quota, sizeQuota);
  return n + unknownSize(m.$unknown);
}
function writeDescriptor(w: HotWire, m: RateLimitResponse_DescriptorStatus): void {
  if (m.code !== 0) {
    w.varint(tag(1, VARINT));
    w.int32(m.code);
  }
  if (m.currentLimit !== undefined) writeNested(w, tag(2, LEN), m.currentLimit, writeRate);
  if (m.limitRemaining !== 0) {
    w.varint(tag(3, VARINT));
    w.varint(m.limitRemaining);
  }
  if (m.durationUntilReset !== undefined)
    writeNested(w, tag(4, LEN), m.durationUntilReset as Duration, writeSecondsNanos);
  if (m.quota !== undefined) writeNested(w, tag(5, LEN), m.quota, writeQuota);
  w.unknown(m.$unknown);
}

/**
 * envoy.service.ratelimit.v3.RateLimitResponse: overall_code 1, statuses 2,
 * response_headers_to_add 3, request_headers_to_add 4, raw_body 5,
 * dynamic_metadata 6, quota 7.
 */
export function sizeRateLimitResponse(w: HotWire, m: RateLimitResponse): number {
  let n = 0;
  if (m.overallCode !== 0) n += 1 + int32Size(m.overallCode);
  for (const s of m.statuses) n += sizeNested(w, s, sizeDescriptor);
  for (const h of m.responseHeadersToAdd) n += sizeNested(w, h, sizeHeaderValue);
  for (const h of m.requestHeadersToAdd) n += sizeNested(w, h, sizeHeaderValue);
  if (m.rawBody.length > 0) n += 1 + varintSize(m.rawBody.length) + m.rawBody.length;
  if (m.dynamicMetadata !== undefined) n += sizeNested(w, asObject(m.dynamicMetadata), sizeStruct);
  if (m.quota !== undefined) n += sizeNested(w, m.quota, sizeQuota);
  return n + unknownSize(m.$unknown);
}
/** Writes what sizeRateLimitResponse sized. */
export function writeRateLimitResponse(w: HotWire, m: RateLimitResponse): void {
  if (m.overallCode !== 0) {
    w.varint(tag(1, VARINT));
    w.int32(m.overallCode);
  }
  for (const s of m.statuses) writeNested(w, tag(2, LEN), s, writeDescriptor);
  for (const h of m.responseHeadersToAdd) writeNested(w, tag(3, LEN), h, writeHeaderValue);
  for (const h of m.requestHeadersToAdd) writeNested(w, tag(4, LEN), h, writeHeaderValue);
  if (m.rawBody.length > 0) {
    w.varint(tag(5, LEN));
    w.bytes(m.rawBody);
  }
  if (m.dynamicMetadata !== undefined)
    writeNested(w, tag(6, LEN), asObject(m.dynamicMetadata), writeStruct);
  if (m.quota !== undefined) writeNested(w, tag(7, LEN), m.quota, writeQuota);
  w.unknown(m.$unknown);
}
