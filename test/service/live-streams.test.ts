/**
 * TailDecisions and FollowEvents through the real handlers: filters, limit,
 * backlog then follow, a slow reader's bounded queue and `dropped` counts,
 * cancellation releasing the subscription, the per-replica stream cap,
 * validation, auth (read-only allowed) and never a secret in a streamed line.
 */

import { setMaxListeners } from "node:events";
import { toJsonString } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MAX_SUBSCRIBERS, SUBSCRIBER_QUEUE } from "../../src/decision/decision-feed.js";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { EventType, Severity } from "../../src/gen/tollgate/v1/event_pb.js";
import {
  type FollowEventsResponse,
  FollowEventsResponseSchema,
  type TailDecisionsResponse,
  TailDecisionsResponseSchema,
} from "../../src/gen/tollgate/v1/live_pb.js";
import { MAX_FOLLOWERS } from "../../src/services/tail-handlers.js";
import { createServiceHarness, type ServiceHarness } from "../helpers/service-deps.js";
import { failure, violatedFields } from "./support.js";

const VIEWER = "viewer-token-0123456789abcdef";
let h: ServiceHarness;

beforeEach(async () => {
  h = await createServiceHarness({
    extraTokens: [{ name: "viewer", token: VIEWER, readOnly: true }],
  });
});
afterEach(() => h.close());

async function mint(): Promise<{ secret: string; id: string }> {
  const r = await h.keys.createKey({ owner: "acme" }, h.auth);
  return { secret: r.secret, id: r.key?.id ?? "" };
}

/** Reads `n` responses of a stream (without ending it). */
async function take<T>(it: AsyncIterator<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  while (out.length < n) {
    const step = await it.next();
    if (step.done) break;
    out.push(step.value);
  }
  return out;
}

/** Reads a stream to its end. */
async function all<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of stream) out.push(x);
  return out;
}

/** Resolves once the feed has `n` subscribers (the stream's opening is asynchronous). */
async function subscribers(n: number): Promise<void> {
  for (let i = 0; i < 200 && h.deps.feed.size !== n; i++) await new Promise((r) => setTimeout(r));
  expect(h.deps.feed.size).toBe(n);
}

describe("TailDecisions", () => {
  it("filters by key and by denials, from the backlog without follow", async () => {
    const a = await mint();
    const b = await mint();
    await h.tollgate.authorize({ apiKey: a.secret });
    await h.tollgate.authorize({ apiKey: b.secret });
    await h.tollgate.authorize({ apiKey: "" });
    await h.tollgate.authorize({ apiKey: a.secret });

    const ofA = await all(h.keys.tailDecisions({ keyId: a.id, backlog: 10 }, h.auth));
    expect(ofA.map((l) => l.keyId)).toEqual([a.id, a.id]);
    expect(ofA.every((l) => l.allowed && l.reason === "OK" && l.rpc === "Authorize")).toBe(true);

    const denied = await all(h.keys.tailDecisions({ deniedOnly: true, backlog: 10 }, h.auth));
    expect(denied.map((l) => l.reason)).toEqual(["MISSING_KEY"]);
    expect(denied[0]?.allowed).toBe(false);

    // Without follow and without a backlog there is nothing to send: the stream ends.
    expect(await all(h.keys.tailDecisions({}, h.auth))).toEqual([]);
    await subscribers(0);
  });

  it("names the key of a revoked key's denial, so a key filter shows it (the caller is not told)", async () => {
    const k = await mint();
    await h.keys.revokeKey({ id: k.id, reason: "leaked" }, h.auth);
    const r = await h.tollgate.authorize({ apiKey: k.secret });
    expect(r.reason).toBe(Reason.REVOKED_KEY);
    expect(r.identity).toBeUndefined();
    const ofK = await all(h.keys.tailDecisions({ keyId: k.id, backlog: 10 }, h.auth));
    expect(ofK.map((l) => [l.keyId, l.reason])).toEqual([[k.id, "REVOKED_KEY"]]);
  });

  it("sends the backlog oldest first, then follows new decisions, and `limit` ends it", async () => {
    const k = await mint();
    for (let i = 0; i < 3; i++) await h.tollgate.authorize({ apiKey: k.secret });
    const ids = (await all(h.keys.tailDecisions({ backlog: 3 }, h.auth))).map((l) => l.decisionId);
    expect(ids).toHaveLength(3);

    const stream = h.keys.tailDecisions({ backlog: 2, follow: true, limit: 4 }, h.auth);
    const it = stream[Symbol.asyncIterator]();
    const backlog = await take(it, 2);
    expect(backlog.map((l) => l.decisionId)).toEqual(ids.slice(1));
    await subscribers(1);
    const fresh = [
      (await h.tollgate.authorize({ apiKey: k.secret })).decisionId,
      (await h.tollgate.authorize({ apiKey: k.secret })).decisionId,
      (await h.tollgate.authorize({ apiKey: k.secret })).decisionId,
    ];
    const followed = await take(it, 10);
    // The limit (4, backlog included) ends the stream after two new decisions.
    expect(followed.map((l) => l.decisionId)).toEqual(fresh.slice(0, 2));
    await subscribers(0);
  });

  it("keeps a slow reader's queue bounded and reports what it lost in `dropped`", async () => {
    const stream = h.keys.tailDecisions({ follow: true, limit: 2 }, h.auth);
    const it = stream[Symbol.asyncIterator]();
    const first = it.next();
    await subscribers(1);
    const extra = 250;
    // The reader reads nothing while many more decisions than its queue holds are taken.
    for (let i = 0; i < SUBSCRIBER_QUEUE + extra + 1; i++) await h.tollgate.authorize({});
    const sub = [
      ...(h.deps.feed as unknown as { subscribers: Set<{ queued: number }> }).subscribers,
    ];
    expect(sub).toHaveLength(1);
    expect(sub[0]?.queued).toBeLessThanOrEqual(SUBSCRIBER_QUEUE);
    const lines = [(await first).value, ...(await take(it, 5))] as TailDecisionsResponse[];
    expect(lines).toHaveLength(2);
    // The first line was taken by the waiting reader; the queue then lost its oldest.
    expect(lines[0]?.dropped).toBe(0n);
    expect(lines[1]?.dropped).toBe(BigInt(extra));
    await subscribers(0);
  });

  it("unsubscribes when the caller cancels", async () => {
    const abort = new AbortController();
    const stream = h.keys.tailDecisions({ follow: true }, { ...h.auth, signal: abort.signal });
    const it = stream[Symbol.asyncIterator]();
    const pending = it.next();
    await subscribers(1);
    abort.abort();
    const e = await failure(pending);
    expect(e.code).toBe(Code.Canceled);
    await subscribers(0);
  });

  it("answers RESOURCE_EXHAUSTED past the per-replica stream cap", async () => {
    const abort = new AbortController();
    setMaxListeners(MAX_SUBSCRIBERS + 1, abort.signal);
    const open = Array.from({ length: MAX_SUBSCRIBERS }, () =>
      h.keys
        .tailDecisions({ follow: true }, { ...h.auth, signal: abort.signal })
        [Symbol.asyncIterator]()
        .next()
        .catch(() => undefined),
    );
    await subscribers(MAX_SUBSCRIBERS);
    const e = await failure(all(h.keys.tailDecisions({ follow: true }, h.auth)));
    expect(e.code).toBe(Code.ResourceExhausted);
    expect(e.message).toContain("streams");
    abort.abort();
    await Promise.all(open);
    await subscribers(0);
  });

  it("validates like every RPC, needs a token, and lets a read-only token read", async () => {
    expect(await violatedFields(all(h.keys.tailDecisions({ backlog: 1001 }, h.auth)))).toEqual([
      "backlog",
    ]);
    expect(await violatedFields(all(h.keys.tailDecisions({ limit: 100_001 }, h.auth)))).toEqual([
      "limit",
    ]);
    expect(
      await violatedFields(all(h.keys.tailDecisions({ keyId: "k".repeat(65) }, h.auth))),
    ).toEqual(["key_id"]);
    expect((await failure(all(h.keys.tailDecisions({})))).code).toBe(Code.Unauthenticated);
    await h.tollgate.authorize({});
    const viewer = { headers: { authorization: `Bearer ${VIEWER}` } };
    expect(await all(h.keys.tailDecisions({ backlog: 1 }, viewer))).toHaveLength(1);
  });

  it("shows every door's decisions, Envoy's ShouldRateLimit too, as the access log does", async () => {
    await h.tollgate.checkRateLimit({ subject: "203.0.113.9" });
    await h.envoyRateLimit.shouldRateLimit({
      domain: "edge",
      descriptors: [{ entries: [{ key: "header_match", value: "internal" }] }],
    });
    const lines = await all(h.keys.tailDecisions({ backlog: 2 }, h.auth));
    expect(lines.map((l) => [l.rpc, l.allowed, l.reason])).toEqual([
      ["CheckRateLimit", true, "OK"],
      ["ShouldRateLimit", true, "OK"],
    ]);
  });

  it("never streams a secret", async () => {
    const k = await mint();
    const stream = h.keys.tailDecisions({ follow: true, limit: 4 }, h.auth);
    const it = stream[Symbol.asyncIterator]();
    const pending = take(it, 4);
    await subscribers(1);
    const wrong = `${k.secret.slice(0, -1)}${k.secret.endsWith("A") ? "B" : "A"}`;
    await h.tollgate.authorize({ apiKey: k.secret, clientIp: "203.0.113.7" });
    await h.tollgate.authorize({ headers: { "x-api-key": k.secret } });
    await h.tollgate.authorize({ apiKey: wrong });
    await h.tollgate.checkRateLimit({ subject: k.id });
    const text = (await pending).map((l) => toJsonString(TailDecisionsResponseSchema, l)).join();
    expect(text).toContain(k.id);
    expect(text).not.toContain(k.secret);
    expect(text).not.toContain(wrong);
    expect(text).not.toContain(k.secret.slice(-20));
  });
});

describe("FollowEvents", () => {
  let n = 0;
  const event = (subject: string, type = "order_fraud") => ({
    events: [{ id: `ev-${++n}`, customType: type, subject, severity: Severity.HIGH }],
  });

  it("streams events stored after it began, with the list filters, and `limit` ends it", async () => {
    // Stored in the millisecond the stream starts, but before it: not streamed.
    await h.tollgate.recordEvent(event("before"));
    const stream = h.keys.followEvents({ customType: "order_fraud", limit: 2 }, h.auth);
    const got = all(stream);
    await new Promise((r) => setTimeout(r, 50));
    h.clock.advance(1);
    await h.tollgate.recordEvent(event("skipped", "other_type"));
    await h.tollgate.recordEvent(event("one"));
    await h.tollgate.recordEvent(event("two"));
    await h.tollgate.recordEvent(event("three"));
    const events = (await got).map((r: FollowEventsResponse) => r.event?.subject);
    expect(events).toEqual(["one", "two"]);
  });

  it("starts at start_time, so a caller that just listed follows on without a gap", async () => {
    const start = h.clock.now();
    await h.tollgate.recordEvent(event("listed"));
    h.clock.advance(5);
    await h.tollgate.recordEvent(event("after"));
    const got = await all(
      h.keys.followEvents(
        { type: EventType.UNSPECIFIED, startTime: timestampFromMs(start), limit: 2 },
        h.auth,
      ),
    );
    expect(got.map((r) => r.event?.subject)).toEqual(["listed", "after"]);
    const tooOld = timestampFromMs(h.clock.now() - 3601_000);
    expect(await violatedFields(all(h.keys.followEvents({ startTime: tooOld }, h.auth)))).toEqual([
      "start_time",
    ]);
  });

  it("validates its filters, caps followers, needs a token, and never streams a secret", async () => {
    expect(
      await violatedFields(all(h.keys.followEvents({ customType: "Bad Type", limit: 1 }, h.auth))),
    ).toEqual(["custom_type"]);
    expect((await failure(all(h.keys.followEvents({})))).code).toBe(Code.Unauthenticated);

    const abort = new AbortController();
    setMaxListeners(MAX_SUBSCRIBERS + 1, abort.signal);
    const open = Array.from({ length: MAX_FOLLOWERS }, () =>
      all(h.keys.followEvents({}, { ...h.auth, signal: abort.signal })).catch(() => undefined),
    );
    await new Promise((r) => setTimeout(r, 50));
    const e = await failure(all(h.keys.followEvents({}, h.auth)));
    expect(e.code).toBe(Code.ResourceExhausted);
    abort.abort();
    await Promise.all(open);

    // A wrong secret makes an auth_failure event: streamed, without the secret.
    const k = await mint();
    const viewer = { headers: { authorization: `Bearer ${VIEWER}` } };
    const got = all(h.keys.followEvents({ type: EventType.AUTH_FAILURE, limit: 1 }, viewer));
    await new Promise((r) => setTimeout(r, 50));
    h.clock.advance(1);
    const wrong = `${k.secret.slice(0, -1)}${k.secret.endsWith("A") ? "B" : "A"}`;
    await h.tollgate.authorize({ apiKey: wrong });
    await h.tollgate.authorize({ apiKey: k.secret.slice(0, -3) });
    const text = (await got).map((r) => toJsonString(FollowEventsResponseSchema, r)).join();
    expect(text).toContain("auth_failure".toUpperCase());
    expect(text).not.toContain(wrong);
    expect(text).not.toContain(k.secret.slice(0, -3));
  });
});
