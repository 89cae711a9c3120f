/**
 * The live views of KeyService, as server streams: TailDecisions (this
 * replica's decisions, from the DecisionFeed: first up to `backlog` recent
 * ones from its ring, then, with `follow`, each as it is taken) and
 * FollowEvents (security events as the event store receives them, read by
 * polling). Both are bounded: at most MAX_SUBSCRIBERS decision streams (the
 * feed's own bound) and MAX_FOLLOWERS event streams per replica, a `limit` of
 * at most STREAM_LIMIT_MAX, and each stream's memory is bounded (the feed's
 * queue; one read of events). Every stream ends when the caller cancels: the
 * transports abort the call's signal, which closes the subscription or the
 * poll at once.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { DecisionLine } from "../decision/decision-feed.js";
import type { EventFilter, SecurityEvent } from "../events/event.js";
import type { KeyService } from "../gen/tollgate/v1/key_service_pb.js";
import {
  type FollowEventsRequest,
  type FollowEventsResponse,
  FollowEventsResponseSchema,
  type TailDecisionsRequest,
  type TailDecisionsResponse,
  TailDecisionsResponseSchema,
} from "../gen/tollgate/v1/live_pb.js";
import { INPUT_BOUNDS } from "../util/input-bounds.js";
import type { CallContext, Handlers } from "./call-context.js";
import { apiError } from "./errors.js";
import { eventToProto } from "./event-convert.js";
import { eventFilter } from "./event-handlers.js";
import { authenticateManagement } from "./management-gate.js";
import type { ServiceDeps } from "./service-deps.js";
import { Violations } from "./validation.js";

/** Largest `limit` of either stream. */
export const STREAM_LIMIT_MAX = INPUT_BOUNDS.streamLimitMax;
/** Most FollowEvents streams at once per replica (each polls the store). */
export const MAX_FOLLOWERS = 64;
/** How often FollowEvents reads the event store, ms. */
export const FOLLOW_POLL_MS = 500;
/** Events per page of one read, and pages per read: 5000 new events at most. */
const FOLLOW_PAGE = 1000;
const FOLLOW_PAGES = 5;

/** The streaming methods of KeyService. */
export type TailHandlers = Pick<Handlers<typeof KeyService>, "tailDecisions" | "followEvents">;

/** Builds TailDecisions and FollowEvents over the graph's feed and event store. */
export function createTailHandlers(d: ServiceDeps): TailHandlers {
  let followers = 0;
  // The opening (token, validation) goes through instrument like any call:
  // measured, and its failures mapped to registry errors.
  const openTail = d.instrument(
    "TailDecisions",
    async (req: TailDecisionsRequest, ctx: CallContext) => {
      await authenticateManagement(d, ctx.requestHeader, "TailDecisions", "read");
      const v = new Violations();
      v.length("key_id", req.keyId, 0, INPUT_BOUNDS.keyIdMaxBytes);
      limitOf(v, req.limit);
      if (req.backlog > INPUT_BOUNDS.tailBacklogMax)
        v.add("backlog", `must be 0..${INPUT_BOUNDS.tailBacklogMax}`);
      v.throwIfAny();
      const sub = d.feed.subscribe(
        { ...(req.keyId !== "" && { keyId: req.keyId }), deniedOnly: req.deniedOnly },
        { backlog: req.backlog },
      );
      if (!sub) throw apiError("TOO_MANY_STREAMS");
      return sub;
    },
  );
  const openFollow = d.instrument(
    "FollowEvents",
    async (req: FollowEventsRequest, ctx: CallContext) => {
      await authenticateManagement(d, ctx.requestHeader, "FollowEvents", "read");
      const v = new Violations();
      const filter = eventFilter(v, req);
      limitOf(v, req.limit);
      const now = d.clock.now();
      // Floored to the millisecond events are stored at (timestampMs rounds:
      // a start at x.7 ms would skip an event stored in millisecond x).
      const from = req.startTime
        ? Number(req.startTime.seconds) * 1000 + Math.floor(req.startTime.nanos / 1e6)
        : now;
      if (from < now - INPUT_BOUNDS.followStartAgeMaxS * 1000)
        v.add("start_time", `must be at most ${INPUT_BOUNDS.followStartAgeMaxS} s before now`);
      v.throwIfAny();
      if (followers >= MAX_FOLLOWERS) throw apiError("TOO_MANY_STREAMS");
      // Counted here, in the same step as the check, so openings that run at
      // once cannot all pass it; the stream's finally gives the place back.
      followers++;
      return { filter, from };
    },
  );
  // Each read of the store is measured as a FollowEvents call, and a store
  // failure ends the stream with the same code a ListEvents would get.
  const read = d.instrument("FollowEvents", (filter: EventFilter, cursor: string | undefined) =>
    d.events.store.list(filter, FOLLOW_PAGE, cursor),
  );

  return {
    async *tailDecisions(req, ctx): AsyncGenerator<TailDecisionsResponse> {
      const sub = await openTail(req, ctx);
      const close = () => sub.close();
      ctx.signal.addEventListener("abort", close, { once: true });
      try {
        let sent = 0;
        let reported = 0;
        // Without `follow`, the stream is the backlog the subscription was
        // given (queued before any new line could be).
        let left = req.follow ? Number.POSITIVE_INFINITY : sub.queued;
        while (left-- > 0) {
          const line = await sub.next();
          if (!line) return;
          const dropped = sub.dropped - reported;
          reported = sub.dropped;
          yield lineToProto(line, dropped);
          if (req.limit > 0 && ++sent >= req.limit) return;
        }
      } finally {
        ctx.signal.removeEventListener("abort", close);
        sub.close();
      }
    },

    async *followEvents(req, ctx): AsyncGenerator<FollowEventsResponse> {
      const { filter: what, from } = await openFollow(req, ctx);
      try {
        let sent = 0;
        // Events recorded at or after `mark` are read; `seen` holds the ids
        // of those recorded at `mark` exactly, already handed out, so equal
        // timestamps are neither lost nor repeated.
        let mark = from;
        let seen = new Set<string>();
        // Without a start_time the stream starts at the call's millisecond:
        // what the first read finds stored in that very millisecond came
        // before the call, and is only taken note of.
        let opening = !req.startTime;
        while (!ctx.signal.aborted) {
          const fresh: SecurityEvent[] = [];
          let cursor: string | undefined;
          let gap = false;
          for (let page = 0; ; page++) {
            const got = await read({ ...what, from: mark }, cursor);
            for (const e of got.items) if (!seen.has(e.id)) fresh.push(e);
            cursor = got.next;
            if (!cursor) break;
            if (page + 1 >= FOLLOW_PAGES) {
              gap = true;
              break;
            }
          }
          const newest = fresh[0];
          if (newest) {
            const at = recorded(newest);
            if (at > mark) seen = new Set();
            mark = Math.max(mark, at);
            for (const e of fresh) if (recorded(e) === mark) seen.add(e.id);
          }
          const out = opening ? fresh.filter((e) => recorded(e) > from) : fresh;
          opening = false;
          // Oldest first, as they happened.
          for (let i = out.length - 1; i >= 0; i--) {
            const e = out[i] as SecurityEvent;
            yield create(FollowEventsResponseSchema, {
              event: eventToProto(e),
              gap: gap && i === out.length - 1,
            });
            if (req.limit > 0 && ++sent >= req.limit) return;
          }
          await pause(FOLLOW_POLL_MS, ctx.signal);
        }
      } finally {
        followers--;
      }
    },
  };
}

function limitOf(v: Violations, limit: number): void {
  if (limit > STREAM_LIMIT_MAX) v.add("limit", `must be 0..${STREAM_LIMIT_MAX}`);
}

function recorded(e: SecurityEvent): number {
  return e.recordedAt ?? e.time;
}

function lineToProto(l: DecisionLine, dropped: number): TailDecisionsResponse {
  return create(TailDecisionsResponseSchema, {
    time: timestampFromMs(l.at),
    rpc: l.rpc,
    decisionId: l.decisionId,
    allowed: l.allowed,
    reason: l.reason,
    keyId: l.keyId ?? "",
    endpoint: l.endpoint ?? "",
    limit: l.limit ?? "",
    clientIp: l.clientIp ?? "",
    latencyMs: l.latencyMs,
    dropped: BigInt(dropped),
  });
}

/** Waits `ms`, or less if `signal` aborts first (the timer is cleared then). */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
