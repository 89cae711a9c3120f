/**
 * How `tollgate events` prints an event (a table row; one JSON object per
 * line when following), and `events list --follow`: after the list, the
 * FollowEvents stream of new events with the list's filters, until Ctrl-C or
 * a closed pipe.
 */
import { create, toJsonString } from "@bufbuild/protobuf";
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { BUILTIN_EVENT_TYPES } from "../events/event.js";
import {
  type Event,
  EventSchema,
  EventType,
  Severity,
  SubjectKind,
} from "../gen/tollgate/v1/event_pb.js";
import { FollowEventsRequestSchema } from "../gen/tollgate/v1/live_pb.js";
import type { createClients } from "./client.js";
import { reportRpcError } from "./client.js";
import { followSession } from "./follow-session.js";

/**
 * How far before the list the stream starts, ms: covers the time the list
 * call takes and a small skew between this machine's clock and the server's.
 */
export const FOLLOW_OVERLAP_MS = 2000;

/** A time as `2026-01-02T03:04:05Z`, or `-`. */
export const when = (t: Parameters<typeof timestampDate>[0] | undefined) =>
  t
    ? timestampDate(t)
        .toISOString()
        .replace(/\.\d+Z$/, "Z")
    : "-";
/** `key`, `ip`, … */
export const kindName = (k: SubjectKind) => SubjectKind[k]?.toLowerCase() ?? "?";
/** `high`, `low`, … */
export const severityName = (s: Severity) => Severity[s]?.toLowerCase() ?? "?";

/** Columns of an events table. */
export const EVENT_COLUMNS = [
  "time",
  "type",
  "severity",
  "subject",
  "endpoint",
  "count",
  "reason/actor",
];

/** One event as a table row. */
export function eventRow(e: Event): string[] {
  return [
    when(e.time),
    e.type === EventType.UNSPECIFIED ? e.customType : (BUILTIN_EVENT_TYPES[e.type - 1] ?? "?"),
    severityName(e.severity),
    `${kindName(e.subjectKind)}:${e.subject}`,
    e.endpoint || "-",
    // Tollgate's own repeated events are aggregated: a record stands for `count` of them.
    e.attributes.count ?? "1",
    e.attributes.reason ?? e.attributes.actor ?? "",
  ];
}

/** Prints one event as a line: a JSON object, or the row's cells. */
export async function printed(
  e: Event,
  json: boolean,
  write: (t: string) => unknown = (t) => process.stdout.write(t),
): Promise<void> {
  await write(json ? `${toJsonString(EventSchema, e)}\n` : `${eventRow(e).join("  ")}\n`);
}

/** The filters FollowEvents shares with ListEvents. */
export interface FollowFilter {
  subject: string;
  subjectKind: SubjectKind;
  type: EventType;
  customType: string;
}

/**
 * Streams new events after a list: from `fromMs` (this machine's clock),
 * leaving out the events the list already printed. Returns the exit code: 0
 * when ended by Ctrl-C, SIGTERM or a closed pipe.
 */
export async function followEvents(
  keys: ReturnType<typeof createClients>["keys"],
  filter: FollowFilter,
  fromMs: number,
  listed: readonly Event[],
  json: boolean,
  baseUrl: string,
): Promise<number> {
  const session = followSession();
  // Only the overlap can repeat: the listed ids are all that need remembering.
  const shown = new Set(listed.map((e) => e.id));
  try {
    const stream = keys.followEvents(
      create(FollowEventsRequestSchema, { ...filter, startTime: timestampFromMs(fromMs) }),
      { signal: session.signal },
    );
    for await (const r of stream) {
      if (!r.event || shown.delete(r.event.id)) continue;
      if (r.gap)
        await session.write(
          "(more events were stored than one read takes: some were skipped; see tollgate events list)\n",
        );
      await printed(r.event, json, session.write);
      if (session.signal.aborted) break;
    }
    return 0;
  } catch (err) {
    if (session.signal.aborted) return 0;
    return reportRpcError("tollgate events list --follow", err, baseUrl);
  } finally {
    session.dispose();
  }
}
