/**
 * Notifications: alerts for a quota or credit balance crossing a configured
 * threshold, credits exhausted, a key expiring soon and a secret due for
 * rotation (the policy's `notifications` section), each raised once per
 * threshold per period per bucket — or once per key expiry / per secret —
 * across every replica.
 *
 * How once-only holds without slowing decisions:
 *  1. a crossing is computed from the decision's own limit outcomes
 *     (threshold-crossing.ts): a decision that crosses nothing costs a few
 *     comparisons, no store call, and nothing is awaited by the decision;
 *  2. a crossing claims a marker in the shared store (NotificationMarks: SET NX
 *     with an expiry at the period's end); only the replica whose claim took
 *     it raises the alert;
 *  3. claims are remembered in a bounded local LRU, so a replica claims each
 *     marker at most once while it remembers it (a quota that stays exhausted
 *     claims "100 %" once per replica, not once per denial).
 *
 * Key notices are checked when a key is used and by a periodic sweep over all
 * keys (page by page), so a key nobody uses is still noticed.
 */
import { LRUCache } from "lru-cache";
import type { KeyRecord } from "../keys/key-record.js";
import type { KeyStore } from "../keys/key-store.js";
import type { Logger } from "../observability/logger.js";
import { type Notifications, quotaThresholdsOf } from "../policy/notification-rules.js";
import type { LimitBy } from "../policy/policy.js";
import type { LimitItem, LimitOutcome } from "../ratelimit/rate-limit-store.js";
import type { RateDecision, RateInput } from "../ratelimit/rate-limiter.js";
import { CREDIT_TTL_MS } from "../store/calendar-window.js";
import { subjectTag } from "../subjects/subject-tag.js";
import type { Clock } from "../util/clock.js";
import { newDecisionId } from "../util/ids.js";
import type { Alert, SubjectKind } from "./event.js";
import type { NotificationMarks } from "./notification-marks.js";
import { type Bucket, crossedThresholds, quotaBucket } from "./threshold-crossing.js";

/** Rule names of the alerts raised here. */
export const NOTIFICATION_RULES = {
  quota: "quota-threshold",
  credits: "credit-threshold",
  creditsExhausted: "credits-exhausted",
  keyExpiring: "key-expiring",
  rotationDue: "rotation-due",
} as const;

/** Claims remembered locally by default. */
export const DEFAULT_REMEMBERED_CLAIMS = 10_000;
/** After a failed claim, no claims for this long, ms: a failing store is not hammered per refusal. */
export const CLAIM_RETRY_MS = 10_000;
/** How long a rotation-due marker lasts: a secret never rotated is reminded of yearly. */
const ROTATION_MARK_MS = 365 * 86_400_000;

/** Who a decision was for: the rate-limit input (empty strings: not given). */
export type NotifyWho = Pick<RateInput, "keyId" | "owner" | "clientIp" | "subject" | "endpoint">;

/** Options of Notifier. */
export interface NotifierOptions {
  marks: NotificationMarks;
  /** The notifications in force (from the policy). */
  notifications: () => Notifications;
  /** Raises an alert (the AlertDispatcher); never throws. */
  raise: (alert: Alert) => Promise<void>;
  clock: Clock;
  log: Logger;
  /** Secrets older than this are due for rotation, ms (TOLLGATE_ROTATION_AGE_S); 0: never. */
  rotationAgeMs: number;
  /** Keys to sweep; undefined: notices only on use. */
  keys?: KeyStore;
  /** Keys read per sweep page (TOLLGATE_NOTIFY_SWEEP_PAGE_SIZE). */
  sweepPageSize?: number;
  /** Sweep interval, ms (TOLLGATE_NOTIFY_SWEEP_INTERVAL_S); 0: no sweep. */
  sweepIntervalMs?: number;
  /** Claims remembered locally (default DEFAULT_REMEMBERED_CLAIMS). */
  rememberedClaims?: number;
}

/** Detects and raises notifications. Every method is safe to call on the hot path. */
export class Notifier {
  private readonly claimed: LRUCache<string, true>;
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private stopped = false;
  /** No claims before this time (epoch ms): set by a failed claim. */
  private pausedUntil = 0;

  constructor(private readonly o: NotifierOptions) {
    this.claimed = new LRUCache({ max: o.rememberedClaims ?? DEFAULT_REMEMBERED_CLAIMS });
  }

  /**
   * After limits were charged: the quota limits whose thresholds the decision
   * crossed. Local (fail-open) decisions are skipped: their counts are this
   * replica's share, not the bucket's.
   */
  charged(who: NotifyWho, r: RateDecision): void {
    const n = this.o.notifications();
    if (!n.enabled || r.decidedLocally || r.reason === "BLOCKED") return;
    let now: number | undefined;
    for (const s of r.limits) {
      const l = s.limit;
      if (l.kind === "credits") {
        if (r.credits && who.keyId) this.creditsChargedBy(who, r, s);
        continue;
      }
      if (l.kind !== "quota" || l.mode === "shadow" || !l.window) continue;
      const thresholds = quotaThresholdsOf(n, l.name);
      if (thresholds.length === 0) continue;
      // Cheap early out before building a bucket: neither charged nor refused.
      if (!r.allowed && !s.outcome.exceeded) continue;
      now ??= this.o.clock.now();
      const subject = subjectOf(l.by, who);
      const b = quotaBucket(
        {
          name: l.name,
          window: l.window,
          capacity: l.requests,
          periodMs: l.periodMs,
          tag: subjectTag(l.by, subject.value),
          remaining: s.outcome.remaining,
          resetMs: s.outcome.resetMs,
          charged: r.allowed ? (r.cost ?? 0) : 0,
          exceeded: !r.allowed && s.outcome.exceeded,
        },
        now,
      );
      for (const t of crossedThresholds(b, thresholds)) this.fireThreshold(b, t, who, subject);
    }
  }

  /**
   * After an Envoy ShouldRateLimit decision: its descriptor quotas (monthly
   * `rate_limit`s) crossing thresholds. Descriptors name no key: the alert's
   * subject is the descriptor's bucket (`caller`), without key id or owner.
   */
  descriptorsCharged(
    items: readonly LimitItem[],
    outcomes: readonly LimitOutcome[],
    o: { allowed: boolean; cost: number; local: boolean },
  ): void {
    const n = this.o.notifications();
    if (!n.enabled || o.local) return;
    let now: number | undefined;
    items.forEach((it, i) => {
      const l = it.limit;
      const outcome = outcomes[i];
      if (!outcome || l.kind !== "quota" || l.mode === "shadow" || !l.window) return;
      const thresholds = quotaThresholdsOf(n, l.name);
      if (thresholds.length === 0 || (!o.allowed && !outcome.exceeded)) return;
      now ??= this.o.clock.now();
      const b = quotaBucket(
        {
          name: l.name,
          window: l.window,
          capacity: l.requests,
          periodMs: l.periodMs,
          tag: it.tag,
          remaining: outcome.remaining,
          resetMs: outcome.resetMs,
          charged: o.allowed ? (it.cost ?? o.cost) : 0,
          exceeded: !o.allowed && outcome.exceeded,
        },
        now,
      );
      const subject = { kind: "caller" as const, value: it.tag.slice(2) };
      const who = {
        keyId: "",
        owner: "",
        clientIp: "",
        subject: subject.value,
        endpoint: undefined,
      };
      for (const t of crossedThresholds(b, thresholds)) this.fireThreshold(b, t, who, subject);
    });
  }

  /**
   * The credit balance of a decision as a Bucket: its capacity is what it
   * refills to (the plan's amount, or its cap in add mode), its period the
   * refill period (markers end at the next refill; a plan that never refills
   * keeps them as long as a balance is kept, two years).
   */
  private creditsChargedBy(who: NotifyWho, r: RateDecision, s: RateDecision["limits"][number]) {
    const n = this.o.notifications();
    if (n.creditThresholds.length === 0 && !n.creditsExhausted) return;
    if (!r.allowed && !s.outcome.exceeded) return;
    const next = r.credits?.nextRefillAt;
    const remaining = s.outcome.remaining;
    this.creditsCharged(
      {
        kind: "credits",
        name: s.limit.name,
        tag: subjectTag("key", who.keyId),
        capacity: s.limit.burst,
        remainingBefore: r.allowed ? remaining + (r.cost ?? 0) : remaining,
        remainingAfter: remaining,
        refused: !r.allowed && s.outcome.exceeded,
        period: next === undefined ? "none" : String(next),
        periodEnd: next ?? this.o.clock.now() + CREDIT_TTL_MS,
      },
      who,
    );
  }

  /**
   * A credit balance a decision drew from (wired by the credits feature): its
   * thresholds and, at zero, `credits-exhausted`. `bucket.tag` names the key.
   */
  creditsCharged(bucket: Bucket, who: Pick<NotifyWho, "keyId" | "owner">): void {
    const n = this.o.notifications();
    if (!n.enabled) return;
    const subject = { kind: "key" as const, value: who.keyId };
    const full = { ...who, clientIp: "", subject: "", endpoint: undefined };
    for (const t of crossedThresholds(bucket, n.creditThresholds))
      this.fireThreshold(bucket, t, full, subject);
    if (!n.creditsExhausted) return;
    const emptied = bucket.refused || (bucket.remainingBefore > 0 && bucket.remainingAfter <= 0);
    if (!emptied) return;
    this.once(bucket.tag, `cx:${bucket.name}:${bucket.period}`, bucket.periodEnd, () => ({
      rule: NOTIFICATION_RULES.creditsExhausted,
      subject: who.keyId,
      subjectKind: "key",
      keyId: who.keyId,
      owner: who.owner,
      limit: bucket.name,
      thresholdPercent: 100,
      message: `key ${who.keyId} (owner ${who.owner}) has exhausted its credits "${bucket.name}"`,
    }));
  }

  /** A key was used (an allowed decision): its expiry and rotation notices. */
  keyUsed(record: KeyRecord): void {
    const n = this.o.notifications();
    if (!n.enabled || (n.keyExpiryMs === undefined && !n.rotationDue)) return;
    this.checkKey(record, n, this.o.clock.now());
  }

  /**
   * Starts the periodic sweep (if keys and an interval are configured). The
   * first pass comes at a random point of the first interval: replicas
   * started together spread out, and one restarted more often than the
   * interval still sweeps.
   */
  start(): void {
    const every = this.o.sweepIntervalMs ?? 0;
    if (!this.o.keys || every <= 0 || this.timer) return;
    this.timer = setTimeout(
      () => {
        void this.sweep();
        this.timer = setInterval(() => void this.sweep(), every);
        this.timer.unref();
      },
      Math.floor(Math.random() * every),
    );
    this.timer.unref();
  }

  /** Stops the sweep; waits for a running one to end. */
  async stop(): Promise<void> {
    this.stopped = true;
    // clearInterval clears a timeout too (one timer type in Node).
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.sweeping;
  }

  /**
   * One pass over every active key, a page at a time (one pass at once: a
   * tick during a pass is skipped). Resolves when the pass is over.
   */
  sweep(): Promise<void> {
    if (this.sweeping) return this.sweeping;
    const run = async () => {
      const keys = this.o.keys;
      const n = this.o.notifications();
      if (!keys || !n.enabled || (n.keyExpiryMs === undefined && !n.rotationDue)) return;
      let after: string | undefined;
      do {
        if (this.stopped) return;
        const page = await keys.list({
          limit: this.o.sweepPageSize ?? 200,
          includeRevoked: false,
          ...(after !== undefined && { after }),
        });
        const now = this.o.clock.now();
        for (const r of page.records) this.checkKey(r, this.o.notifications(), now);
        after = page.next;
      } while (after !== undefined);
    };
    this.sweeping = run()
      .catch((err: Error) =>
        this.o.log.warn({ err: { message: err.message } }, "notification sweep failed"),
      )
      .finally(() => {
        this.sweeping = undefined;
      });
    return this.sweeping;
  }

  private checkKey(r: KeyRecord, n: Notifications, now: number): void {
    if (r.status !== "active") return;
    const tag = subjectTag("key", r.id);
    if (
      n.keyExpiryMs !== undefined &&
      r.expiresAt !== undefined &&
      r.expiresAt > now &&
      r.expiresAt - now <= n.keyExpiryMs
    ) {
      const expiresAt = r.expiresAt;
      this.once(tag, `ke:${expiresAt}`, expiresAt, () => ({
        rule: NOTIFICATION_RULES.keyExpiring,
        subject: r.id,
        subjectKind: "key",
        keyId: r.id,
        owner: r.owner,
        message: `key ${r.id} (owner ${r.owner}) expires at ${new Date(expiresAt).toISOString()}`,
      }));
    }
    const age = this.o.rotationAgeMs;
    if (n.rotationDue && age > 0 && now - r.secretCreatedAt >= age) {
      this.once(tag, `rd:${r.secretCreatedAt}`, now + ROTATION_MARK_MS, () => ({
        rule: NOTIFICATION_RULES.rotationDue,
        subject: r.id,
        subjectKind: "key",
        keyId: r.id,
        owner: r.owner,
        message: `key ${r.id} (owner ${r.owner}) is due for rotation: its secret dates from ${new Date(r.secretCreatedAt).toISOString()}`,
      }));
    }
  }

  private fireThreshold(
    b: Bucket,
    t: number,
    who: NotifyWho,
    subject: { kind: SubjectKind; value: string },
  ): void {
    const id = `${b.kind === "quota" ? "q" : "c"}:${b.name}:${b.period}:${t}`;
    this.once(b.tag, id, b.periodEnd, () => {
      const used = b.capacity - Math.max(0, b.remainingAfter);
      const whose = who.keyId
        ? `key ${who.keyId}${who.owner ? ` (owner ${who.owner})` : ""}`
        : `${subject.kind} ${subject.value}`;
      const what = b.kind === "quota" ? `quota "${b.name}"` : `credits "${b.name}"`;
      return {
        rule: b.kind === "quota" ? NOTIFICATION_RULES.quota : NOTIFICATION_RULES.credits,
        subject: subject.value,
        subjectKind: subject.kind,
        ...(who.keyId && { keyId: who.keyId }),
        ...(who.owner && { owner: who.owner }),
        limit: b.name,
        thresholdPercent: t,
        message: `${whose} reached ${t}% of ${what}${b.refused ? " (refused: no room left)" : ""}: ${Math.min(used, b.capacity)} of ${b.capacity} used; the period ends ${new Date(b.periodEnd).toISOString()}`,
      };
    });
  }

  /**
   * Raises the alert `build` makes if this replica takes marker `id` of `tag`
   * (remembered locally first: a marker is claimed once per replica while
   * remembered). Never throws, never waits: the claim runs in the background.
   */
  private once(
    tag: string,
    id: string,
    untilMs: number,
    build: () => Omit<Alert, "id" | "severity" | "firedAt">,
  ): void {
    const local = `${tag}\u0000${id}`;
    if (this.claimed.has(local)) return;
    if (this.pausedUntil !== 0 && this.o.clock.now() < this.pausedUntil) return;
    this.claimed.set(local, true);
    this.o.marks.claim(tag, id, untilMs).then(
      (took) => {
        if (!took) return;
        const now = this.o.clock.now();
        void this.o.raise({
          id: `al_${newDecisionId(now)}`,
          severity: this.o.notifications().severity,
          firedAt: now,
          ...build(),
        });
      },
      (err: Error) => {
        // At most once: a failed claim raises nothing (a later crossing, use or
        // sweep may, once CLAIM_RETRY_MS has passed: one warning per pause, not per refusal).
        this.claimed.delete(local);
        this.pausedUntil = this.o.clock.now() + CLAIM_RETRY_MS;
        this.o.log.warn(
          { err: { message: err.message }, notice: id.split(":")[0] },
          "notification marker not claimed: notice skipped",
        );
      },
    );
  }
}

/** The subject a limit's bucket belongs to, as an alert names it. */
function subjectOf(by: LimitBy, who: NotifyWho): { kind: SubjectKind; value: string } {
  switch (by) {
    case "key":
      return { kind: "key", value: who.keyId };
    case "owner":
      return { kind: "owner", value: who.owner };
    case "ip":
      return { kind: "ip", value: who.clientIp };
    case "subject":
      return { kind: "caller", value: who.subject };
    case "endpoint":
      return { kind: "caller", value: who.endpoint?.name ?? "-" };
  }
}
