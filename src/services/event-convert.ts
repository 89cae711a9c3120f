/** Conversions between the event domain and tollgate.v1 Event / Alert messages. */
import { create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import {
  type Alert,
  BUILTIN_EVENT_TYPES,
  SEVERITIES,
  type SecurityEvent,
  type Severity,
  type SubjectKind,
} from "../events/event.js";
import {
  type Alert as AlertMsg,
  AlertSchema,
  type Event as EventMsg,
  EventSchema,
  EventType,
  type Severity as SeverityEnum,
  SubjectKind as SubjectKindEnum,
} from "../gen/tollgate/v1/event_pb.js";
import { ts } from "./convert.js";

/** Built-in type name ⇄ proto enum: `auth_failure` ⇄ EVENT_TYPE_AUTH_FAILURE (= index + 1). */
export function typeFromProto(t: EventType, custom: string): string {
  return t === EventType.UNSPECIFIED ? custom : (BUILTIN_EVENT_TYPES[t - 1] ?? "");
}

/** Splits a type name into the proto's enum and custom fields. */
export function typeToProto(type: string): { type: EventType; customType: string } {
  const i = (BUILTIN_EVENT_TYPES as readonly string[]).indexOf(type);
  return i >= 0
    ? { type: i + 1, customType: "" }
    : { type: EventType.UNSPECIFIED, customType: type };
}

/** Severity enum → name (UNSPECIFIED is info). */
export function severityFromProto(s: SeverityEnum): Severity {
  return SEVERITIES[Math.max(0, s - 1)] ?? "info";
}

/** Severity name → enum. */
export function severityToProto(s: Severity): SeverityEnum {
  return (SEVERITIES.indexOf(s) + 1) as SeverityEnum;
}

const KINDS: Record<SubjectKind, SubjectKindEnum> = {
  key: SubjectKindEnum.KEY,
  ip: SubjectKindEnum.IP,
  owner: SubjectKindEnum.OWNER,
  caller: SubjectKindEnum.CALLER,
};

/** Subject kind enum → name (UNSPECIFIED is caller). */
export function kindFromProto(k: SubjectKindEnum): SubjectKind {
  return (Object.entries(KINDS).find(([, v]) => v === k)?.[0] as SubjectKind) ?? "caller";
}

/** A validated Event message → domain event (`now` fills an unset time). */
export function eventFromProto(e: EventMsg, now: number): SecurityEvent {
  return {
    id: e.id,
    type: typeFromProto(e.type, e.customType),
    subject: e.subject,
    subjectKind: kindFromProto(e.subjectKind),
    endpoint: e.endpoint,
    severity: severityFromProto(e.severity),
    attributes: { ...e.attributes },
    time: e.time ? timestampMs(e.time) : now,
    clientIp: e.clientIp,
    keyId: e.keyId,
  };
}

/** Domain event → Event message. */
export function eventToProto(e: SecurityEvent): EventMsg {
  return create(EventSchema, {
    id: e.id,
    ...typeToProto(e.type),
    subject: e.subject,
    subjectKind: KINDS[e.subjectKind],
    endpoint: e.endpoint,
    severity: severityToProto(e.severity),
    attributes: e.attributes,
    time: ts(e.time),
    clientIp: e.clientIp,
    keyId: e.keyId,
  });
}

/** Domain alert → Alert message. */
export function alertToProto(a: Alert): AlertMsg {
  return create(AlertSchema, {
    id: a.id,
    rule: a.rule,
    severity: severityToProto(a.severity),
    subject: a.subject,
    subjectKind: KINDS[a.subjectKind],
    message: a.message,
    fireTime: ts(a.firedAt),
    blockedUntil: ts(a.blockedUntil),
    keyId: a.keyId ?? "",
    owner: a.owner ?? "",
    limit: a.limit ?? "",
    thresholdPercent: a.thresholdPercent ?? 0,
  });
}
