import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import {
  BUILTIN_EVENT_TYPES,
  CUSTOM_TYPE,
  EVENT_ID,
  type EventFilter,
  REQUEST_TYPE,
} from "../events/event.js";
import type { UsageCounts } from "../events/usage-store.js";
import { EventType, SubjectKind as SubjectKindEnum } from "../gen/tollgate/v1/event_pb.js";
import {
  EndpointUsageSchema,
  type GetUsageRequest,
  type GetUsageResponse,
  GetUsageResponseSchema,
  type ListAlertsRequest,
  type ListAlertsResponse,
  ListAlertsResponseSchema,
  type ListEventsRequest,
  type ListEventsResponse,
  ListEventsResponseSchema,
  UsageBucketSchema,
  UsageGranularity,
} from "../gen/tollgate/v1/key_service_pb.js";
import {
  type RecordEventRequest,
  type RecordEventResponse,
  RecordEventResponseSchema,
} from "../gen/tollgate/v1/tollgate_service_pb.js";
import { normaliseIp } from "../subjects/ip-address.js";
import { INPUT_BOUNDS, INPUT_PATTERNS } from "../util/input-bounds.js";
import { HOUR_MS, MINUTE_MS } from "../util/time-buckets.js";
import { ts } from "./convert.js";
import { apiError } from "./errors.js";
import {
  alertToProto,
  eventFromProto,
  eventToProto,
  kindFromProto,
  typeFromProto,
} from "./event-convert.js";
import type { ServiceDeps } from "./service-deps.js";
import { Violations } from "./validation.js";

const B = INPUT_BOUNDS;
const KEY_ID = INPUT_PATTERNS.keyId;
const CURSOR = /^[0-9]{1,20}(-[0-9]{1,20}\.[0-9]{1,3})?$/;
const MAX_BUCKETS = B.usageBucketsMax;
const DAY_MS = 86_400_000;

/** RecordEvent: validates, stores durably, returns accepted / duplicate ids and fired alerts. */
export async function recordEvent(
  d: ServiceDeps,
  req: RecordEventRequest,
): Promise<RecordEventResponse> {
  const v = new Violations();
  if (req.events.length < 1 || req.events.length > B.eventsPerBatchMax)
    v.add("events", `must have 1..${B.eventsPerBatchMax} entries`);
  const now = d.clock.now();
  req.events.slice(0, B.eventsPerBatchMax).forEach((e, i) => {
    const f = (name: string) => `events[${i}].${name}`;
    v.length(f("id"), e.id, 1, B.eventIdMaxBytes);
    if (e.id !== "" && Buffer.byteLength(e.id) <= B.eventIdMaxBytes)
      v.pattern(f("id"), e.id, EVENT_ID, "1..128 of [A-Za-z0-9._:-]");
    if (e.type === EventType.UNSPECIFIED) {
      v.pattern(
        f("custom_type"),
        e.customType,
        CUSTOM_TYPE,
        "1..64 of [a-z0-9._-] when type is UNSPECIFIED",
      );
      if (
        (BUILTIN_EVENT_TYPES as readonly string[]).includes(e.customType) ||
        e.customType === REQUEST_TYPE
      )
        v.add(f("custom_type"), "must not be a built-in type name (set `type` instead)");
    } else {
      // Every EventType is one Tollgate records itself (auth failures, denials,
      // blocks, the key audit trail): accepting them from callers would let
      // anyone on the pod's loopback fire rules (block an IP's valid key) or
      // forge audit entries. Applications report with custom_type.
      v.add(
        f("type"),
        "is reserved for events Tollgate records itself; report application events with custom_type (type UNSPECIFIED)",
      );
    }
    v.length(f("subject"), e.subject, 1, B.subjectMaxBytes);
    if (!(e.subjectKind in SubjectKindEnum))
      v.add(f("subject_kind"), "must be a known SubjectKind");
    v.length(f("endpoint"), e.endpoint, 0, B.eventEndpointMaxBytes);
    if (e.severity < 0 || e.severity > 5) v.add(f("severity"), "must be a known Severity");
    v.map(
      f("attributes"),
      e.attributes,
      B.eventAttributesMax,
      B.eventAttributeKeyMaxBytes,
      B.eventAttributeValueMaxBytes,
    );
    v.length(f("client_ip"), e.clientIp, 0, B.clientIpMaxBytes);
    if (e.clientIp !== "" && !normaliseIp(e.clientIp))
      v.add(f("client_ip"), "must be an IPv4 or IPv6 address");
    v.length(f("key_id"), e.keyId, 0, B.keyIdMaxBytes);
    if (e.time) {
      const t = timestampMs(e.time);
      if (!Number.isFinite(t) || t < 0 || t > now + 3_600_000)
        v.add(f("time"), `must be after ${B.minYear} and at most 1 hour ahead`);
    }
  });
  v.throwIfAny();
  const r = await d.events.recorder.record(req.events.map((e) => eventFromProto(e, now)));
  return create(RecordEventResponseSchema, {
    acceptedIds: r.accepted,
    duplicateIds: r.duplicates,
    alerts: r.alerts.map(alertToProto),
  });
}

/** ListEvents. */
export async function listEvents(
  d: ServiceDeps,
  req: ListEventsRequest,
): Promise<ListEventsResponse> {
  const v = new Violations();
  if (req.pageSize > B.listEventsPageMax) v.add("page_size", `must be 0..${B.listEventsPageMax}`);
  const cursor = decodeCursor(v, req.pageToken);
  const what = eventFilter(v, req);
  const { from, to } = range(v, req.startTime, req.endTime);
  v.throwIfAny();
  const filter: EventFilter = {
    ...what,
    ...(from !== undefined && { from }),
    ...(to !== undefined && { to }),
  };
  const page = await d.events.store.list(filter, req.pageSize || 100, cursor);
  return create(ListEventsResponseSchema, {
    events: page.items.map(eventToProto),
    nextPageToken: page.next ? Buffer.from(page.next).toString("base64url") : "",
  });
}

/**
 * The subject and type filters of ListEvents and FollowEvents, validated into
 * `v` (the caller throws): subject at most 256 bytes, custom type by pattern,
 * never both a type and a custom type.
 */
export function eventFilter(
  v: Violations,
  req: { subject: string; subjectKind: SubjectKindEnum; type: EventType; customType: string },
): Omit<EventFilter, "from" | "to"> {
  v.length("subject", req.subject, 0, B.subjectMaxBytes);
  if (req.customType !== "")
    v.pattern("custom_type", req.customType, CUSTOM_TYPE, "1..64 of [a-z0-9._-]");
  if (req.type !== EventType.UNSPECIFIED && req.customType !== "")
    v.add("custom_type", "must be empty when type is set");
  const type = typeFromProto(req.type, req.customType);
  return {
    ...(req.subject !== "" && { subject: req.subject }),
    ...(req.subjectKind !== SubjectKindEnum.UNSPECIFIED && {
      subjectKind: kindFromProto(req.subjectKind),
    }),
    ...(type !== "" && { type }),
  };
}

/** ListAlerts. */
export async function listAlerts(
  d: ServiceDeps,
  req: ListAlertsRequest,
): Promise<ListAlertsResponse> {
  const v = new Violations();
  if (req.pageSize > B.listEventsPageMax) v.add("page_size", `must be 0..${B.listEventsPageMax}`);
  const cursor = decodeCursor(v, req.pageToken);
  v.length("rule", req.rule, 0, B.alertRuleMaxBytes);
  v.length("subject", req.subject, 0, B.subjectMaxBytes);
  const { from, to } = range(v, req.startTime, req.endTime);
  v.throwIfAny();
  const page = await d.events.store.listAlerts(
    {
      ...(req.rule !== "" && { rule: req.rule }),
      ...(req.subject !== "" && { subject: req.subject }),
      ...(from !== undefined && { from }),
      ...(to !== undefined && { to }),
    },
    req.pageSize || 100,
    cursor,
  );
  return create(ListAlertsResponseSchema, {
    alerts: page.items.map(alertToProto),
    nextPageToken: page.next ? Buffer.from(page.next).toString("base64url") : "",
  });
}

/** GetUsage: buckets of a key's request counts, oldest first, empty ones included. */
export async function getUsage(d: ServiceDeps, req: GetUsageRequest): Promise<GetUsageResponse> {
  const v = new Violations();
  v.length("key_id", req.keyId, 1, B.keyIdMaxBytes);
  if (req.keyId !== "" && Buffer.byteLength(req.keyId) <= B.keyIdMaxBytes)
    v.pattern("key_id", req.keyId, KEY_ID, "a key id");
  v.length("endpoint", req.endpoint, 0, B.endpointMaxBytes);
  const g =
    req.granularity === UsageGranularity.UNSPECIFIED ? UsageGranularity.MINUTE : req.granularity;
  if (!(g in UsageGranularity)) v.add("granularity", "must be a known UsageGranularity");
  const width =
    g === UsageGranularity.DAY ? DAY_MS : g === UsageGranularity.HOUR ? HOUR_MS : MINUTE_MS;
  const now = d.clock.now();
  const end = req.endTime ? timestampMs(req.endTime) : now;
  const start = req.startTime ? timestampMs(req.startTime) : end - HOUR_MS;
  if (!Number.isFinite(start) || !Number.isFinite(end) || start >= end)
    v.add("start_time", "must be before end_time");
  const first = Math.floor(start / width) * width;
  const count = Math.ceil((end - first) / width);
  if (count > MAX_BUCKETS) v.add("end_time", `the range must span at most ${MAX_BUCKETS} buckets`);
  if (first < now - d.events.usageRetentionMs - width)
    v.add(
      "start_time",
      `must be within the usage retention (${Math.round(d.events.usageRetentionMs / 1000)} s)`,
    );
  v.throwIfAny();
  // An unknown key has no usage to show: say so, as GetKey does, instead of zeros.
  if (!(await d.keys.get(req.keyId))) throw apiError("KEY_NOT_FOUND");
  const starts = Array.from({ length: count }, (_, i) => first + i * width);
  let counts: UsageCounts[];
  if (g === UsageGranularity.MINUTE)
    counts = await d.events.usage.read(req.keyId, "minute", starts);
  else {
    const per = width / HOUR_MS;
    const hours = await d.events.usage.read(
      req.keyId,
      "hour",
      starts.flatMap((s) => Array.from({ length: per }, (_, i) => s + i * HOUR_MS)),
    );
    counts = starts.map((_, b) => sum(hours.slice(b * per, (b + 1) * per)));
  }
  if (req.endpoint !== "") counts = counts.map((c) => ({ [req.endpoint]: c[req.endpoint] ?? 0 }));
  const total = sum(counts);
  return create(GetUsageResponseSchema, {
    granularity: g,
    buckets: counts.map((c, i) =>
      create(UsageBucketSchema, {
        startTime: ts(starts[i]),
        requests: BigInt(Object.values(c).reduce((a, b) => a + b, 0)),
        endpoints: topEndpoints(c),
      }),
    ),
    totalRequests: BigInt(Object.values(total).reduce((a, b) => a + b, 0)),
    endpoints: topEndpoints(total),
  });
}

function sum(list: readonly UsageCounts[]): UsageCounts {
  const out: UsageCounts = {};
  for (const c of list) for (const [k, n] of Object.entries(c)) out[k] = (out[k] ?? 0) + n;
  return out;
}

function topEndpoints(c: UsageCounts) {
  const sorted = Object.entries(c)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1]);
  const top = sorted.slice(0, 63);
  const rest = sorted.slice(63).reduce((a, [, n]) => a + n, 0);
  if (rest > 0) top.push(["*other*", rest]);
  return top.map(([endpoint, n]) => create(EndpointUsageSchema, { endpoint, requests: BigInt(n) }));
}

function decodeCursor(v: Violations, token: string): string | undefined {
  v.length("page_token", token, 0, B.pageTokenMaxBytes);
  if (token === "") return undefined;
  const c = Buffer.from(token, "base64url").toString("utf8");
  if (!CURSOR.test(c)) {
    v.add("page_token", "must be a token from a previous response");
    return undefined;
  }
  return c;
}

function range(v: Violations, start?: Timestamp, end?: Timestamp): { from?: number; to?: number } {
  const from = start ? timestampMs(start) : undefined;
  const to = end ? timestampMs(end) : undefined;
  if (from !== undefined && to !== undefined && from >= to)
    v.add("start_time", "must be before end_time");
  return { ...(from !== undefined && { from }), ...(to !== undefined && { to }) };
}

/** Audit trail of a key-management action (with the acting token's name). Never waits. */
export function recordKeyAction(
  d: ServiceDeps,
  action: "create" | "update" | "revoke" | "rotate",
  keyId: string,
  actor: string,
  owner?: string,
  extra: Readonly<Record<string, string>> = {},
): void {
  d.events.recorder.emit({
    type: `key_${action === "create" ? "created" : action === "update" ? "updated" : action === "revoke" ? "revoked" : "rotated"}`,
    subject: keyId,
    subjectKind: "key",
    severity: action === "revoke" ? "medium" : "info",
    keyId,
    attributes: { actor, ...(owner !== undefined && { owner }), ...extra },
  });
}
