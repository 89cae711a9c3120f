/** `tollgate events list|alerts`: recorded security events and alerts of a running server. */
import { create, toJsonString } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { BUILTIN_EVENT_TYPES } from "../events/event.js";
import { EventType, SubjectKind } from "../gen/tollgate/v1/event_pb.js";
import {
  ListAlertsRequestSchema,
  ListAlertsResponseSchema,
  ListEventsRequestSchema,
  ListEventsResponseSchema,
} from "../gen/tollgate/v1/key_service_pb.js";
import { table } from "./check-config-command.js";
import { clientsFromOptions, parseCommandLine, reportRpcError } from "./client.js";
import { parseDuration } from "./duration.js";
import {
  EVENT_COLUMNS,
  eventRow,
  FOLLOW_OVERLAP_MS,
  followEvents,
  kindName,
  printed,
  severityName,
  when,
} from "./events-follow.js";

const HELP = `Usage: tollgate events <command> [options]

Commands:
  list     recorded security events, newest first
           [--subject S] [--kind key|ip|owner|caller] [--type TYPE] [--since 1h] [--limit N]
           [--follow]: then stream new events as they are stored, until Ctrl-C
  alerts   alerts raised by detection rules and notifications, newest first
           [--rule NAME] [--subject S] [--since 1h] [--limit N]

TYPE is a built-in type (${BUILTIN_EVENT_TYPES.join(", ")}) or an application-defined one.
Options: --server URL, --token-file F, --json, --page-token T (as for tollgate keys)
`;

/** Each subcommand's own help. */
const SUB_HELP: Record<string, string> = {
  list: `Usage: tollgate events list [options]

Recorded security events, newest first.

  --subject S                   only events about this subject
  --kind key|ip|owner|caller    the subject's kind
  --type TYPE                   only this type: ${BUILTIN_EVENT_TYPES.join(", ")}, or an application-defined one
  --since DURATION              only this recent, e.g. 1h
  --limit N                     at most N events (default 50)
  --page-token T                the next page
  --follow                      then stream each new event that passes --subject,
                                --kind and --type as it is stored, until Ctrl-C;
                                with --json, one JSON object per event and line
Options: --server URL, --token-file F, --json (as for tollgate keys)

Examples:
  tollgate events list --kind ip --since 1h
  tollgate events list --type auth_failure --follow
`,
  alerts: `Usage: tollgate events alerts [options]

Alerts raised by detection rules and notifications (quota-threshold, key-expiring, …),
newest first; a notification's key, owner, limit and threshold are in the detail column.

  --rule NAME        only this rule's alerts
  --subject S        only alerts about this subject
  --since DURATION   only this recent, e.g. 24h
  --limit N          at most N alerts (default 50)
  --page-token T     the next page
Options: --server URL, --token-file F, --json (as for tollgate keys)

Example:
  tollgate events alerts --since 24h
`,
};

const KIND: Record<string, SubjectKind> = {
  key: SubjectKind.KEY,
  ip: SubjectKind.IP,
  owner: SubjectKind.OWNER,
  caller: SubjectKind.CALLER,
};

/** Runs an events subcommand; returns the exit code. */
export async function eventsCommand(argv: string[]): Promise<number> {
  const cl = parseCommandLine(
    "tollgate events",
    argv,
    {
      list: ["limit", "page-token", "subject", "kind", "type", "since", "follow"],
      alerts: ["limit", "page-token", "rule", "subject", "since"],
    },
    HELP,
    SUB_HELP,
    ["follow"],
  );
  if (typeof cl === "number") return cl;
  const { o, positionals, str } = cl;
  const cmd = positionals[0] as string;
  let startTime: ReturnType<typeof timestampFromMs> | undefined;
  try {
    if (str("since")) startTime = timestampFromMs(Date.now() - parseDuration(str("since")));
  } catch (err) {
    process.stderr.write(`tollgate events: ${(err as Error).message}\n`);
    return 2;
  }
  if (str("kind") && !(str("kind") in KIND)) {
    process.stderr.write(`tollgate events: --kind must be key, ip, owner or caller\n`);
    return 2;
  }
  const { keys, baseUrl } = clientsFromOptions(o);
  const pageSize = o.limit ? Number(o.limit) : 50;
  try {
    if (cmd === "list") {
      const builtin = (BUILTIN_EVENT_TYPES as readonly string[]).indexOf(str("type"));
      const what = {
        subject: str("subject"),
        subjectKind: KIND[str("kind")] ?? SubjectKind.UNSPECIFIED,
        type: builtin >= 0 ? ((builtin + 1) as EventType) : EventType.UNSPECIFIED,
        customType: builtin >= 0 ? "" : str("type"),
      };
      // Following starts a little before the list was asked for, so nothing
      // falls between the two (what both return is printed once).
      const followFrom = Date.now() - FOLLOW_OVERLAP_MS;
      const res = await keys.listEvents(
        create(ListEventsRequestSchema, {
          pageSize,
          pageToken: str("page-token"),
          ...what,
          startTime,
        }),
      );
      const follow = () =>
        followEvents(keys, what, followFrom, res.events, o.json === true, baseUrl);
      if (o.json) {
        // Following, every event is one JSON line: the listed ones, then the new ones.
        if (o.follow) {
          for (const e of res.events) await printed(e, true);
          return await follow();
        }
        process.stdout.write(
          `${toJsonString(ListEventsResponseSchema, res, { prettySpaces: 2 })}\n`,
        );
        return 0;
      }
      if (res.events.length === 0) process.stdout.write("no events\n");
      else {
        process.stdout.write(`${table(EVENT_COLUMNS, res.events.map(eventRow)).join("\n")}\n`);
      }
      if (res.nextPageToken) process.stdout.write(`more: --page-token ${res.nextPageToken}\n`);
      return o.follow ? await follow() : 0;
    }
    if (cmd === "alerts") {
      const res = await keys.listAlerts(
        create(ListAlertsRequestSchema, {
          pageSize,
          pageToken: str("page-token"),
          rule: str("rule"),
          subject: str("subject"),
          startTime,
        }),
      );
      if (o.json) {
        process.stdout.write(
          `${toJsonString(ListAlertsResponseSchema, res, { prettySpaces: 2 })}\n`,
        );
        return 0;
      }
      if (res.alerts.length === 0) process.stdout.write("no alerts\n");
      else {
        const rows = res.alerts.map((a) => [
          when(a.fireTime),
          a.rule,
          severityName(a.severity),
          `${kindName(a.subjectKind)}:${a.subject}`,
          a.blockedUntil ? when(a.blockedUntil) : "-",
          alertDetail(a),
        ]);
        process.stdout.write(
          `${table(["fired", "rule", "severity", "subject", "blocked until", "detail"], rows).join("\n")}\n`,
        );
      }
      if (res.nextPageToken) process.stdout.write(`more: --page-token ${res.nextPageToken}\n`);
      return 0;
    }
    process.stderr.write(`tollgate events: unknown command "${cmd}"\n\n${HELP}`);
    return 2;
  } catch (err) {
    return reportRpcError(`tollgate events ${cmd}`, err, baseUrl);
  }
}

/** A notification's key, owner, limit and threshold in one cell (`-` for a detection alert). */
function alertDetail(a: {
  keyId: string;
  owner: string;
  limit: string;
  thresholdPercent: number;
}): string {
  const parts = [
    a.keyId && `key=${a.keyId}`,
    a.owner && `owner=${a.owner}`,
    a.limit && `limit=${a.limit}`,
    a.thresholdPercent > 0 && `${a.thresholdPercent}%`,
  ].filter((p): p is string => typeof p === "string" && p !== "");
  return parts.length === 0 ? "-" : parts.join(" ");
}
