/**
 * What every decision leaves behind, in one place: the decision counter and
 * local-decision counter (docs/metrics.md), one access-log line per decision
 * (when enabled; never a secret), and the security events the event flow
 * feeds detection and usage with. Doors never count, log or record a decision
 * themselves; a refusal a door makes before the engine runs (a malformed Envoy
 * request) goes through `refused`.
 */
import type { EventRecorder } from "../events/event-recorder.js";
import type { Notifier } from "../events/notifier.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { Policy } from "../policy/policy.js";
import type { ActiveBlockEntry, BlockListener } from "../ratelimit/block-book.js";
import type { RateDecision, RateInput } from "../ratelimit/rate-limiter.js";
import type { Decision } from "./decision.js";
import type { DescriptorDecision, DescriptorFacts } from "./decision-engine.js";
import type { DecisionFeed, DecisionLine } from "./decision-feed.js";
import type { Door, RequestFacts } from "./facts.js";
import { keyFingerprint } from "./key-fingerprint.js";

/** Options of DecisionObserver. */
export interface DecisionObserverOptions {
  metrics: Metrics;
  log: Logger;
  /** The event flow (security events, usage). */
  recorder: Pick<EventRecorder, "emit" | "request">;
  policy: () => Policy;
  /** Threshold and key notices of decisions (never waits; see events/notifier.ts). */
  notifier?: Pick<Notifier, "charged" | "keyUsed" | "descriptorsCharged">;
  /**
   * Which decisions get an access-log line: all, denials (every denial and
   * refusal, and `accessLogSample` of the allowed), or none.
   */
  accessLog: "all" | "denials" | "off";
  /** With `denials`: the share of allowed decisions logged (0..1). */
  accessLogSample: number;
  /** Live watchers of decisions (tail, console) and the ring of recent ones: every decision is published. */
  feed?: DecisionFeed;
}

/** Bad-key reasons: an `auth_failure` event (others are `permission_denied`). */
const AUTH_FAILURES: ReadonlySet<string> = new Set([
  "MISSING_KEY",
  "MALFORMED_KEY",
  "UNKNOWN_KEY",
  "EXPIRED_KEY",
  "REVOKED_KEY",
]);

const BLOCK_KIND: Record<string, string> = { k: "key", i: "ip", s: "subject" };

/** Counts, logs and records decisions. */
export class DecisionObserver implements BlockListener {
  /** Allowed decisions seen under `denials` (evenly spaced sampling). */
  private allowedSeen = 0;

  constructor(private readonly o: DecisionObserverOptions) {}

  /**
   * Whether this decision gets an access-log line. Why a sample by default:
   * a line per decision cost about 30 % of a cached Authorize's throughput
   * (serialising and writing it on the event loop), while denials — what an
   * operator looks for — are rare and always logged.
   */
  private logs(allowed: boolean): boolean {
    const mode = this.o.accessLog;
    if (mode === "all") return true;
    if (mode === "off") return false;
    if (!allowed) return true;
    // The n-th allowed decision is logged when n × share crosses a whole
    // number (the epsilon absorbs binary fractions such as 0.1).
    const share = this.o.accessLogSample;
    const n = ++this.allowedSeen;
    return Math.floor(n * share + 1e-9) > Math.floor((n - 1) * share + 1e-9);
  }

  /** After a decision of the engine. An incomplete one is the caller's mistake: the door reports it. */
  decided(f: RequestFacts, d: Decision): void {
    if (d.kind === "incomplete") return;
    const allowed = d.kind === "allowed";
    const tier =
      d.record?.tier ?? (f.credential.kind === "anonymous" ? f.credential.tier : undefined);
    this.count(f.door, allowed, d.reason, tier, d.decidedLocally);
    this.record(f, d);
    if (allowed && d.record && !d.decidedLocally) this.o.notifier?.keyUsed(d.record);
    // Published even when nobody listens: the feed's ring keeps the recent past.
    const feed = this.o.feed;
    const log = this.logs(allowed);
    if (!log && !feed) return;
    const deciding = d.limits?.deciding;
    const line = {
      decisionId: d.decisionId,
      keyId: d.record?.id ?? d.unusableKeyId,
      reason: d.reason,
      allowed,
      endpoint: d.endpoint?.name,
      limit: deciding === undefined ? undefined : d.limits?.limits[deciding]?.limit.name,
      clientIp: f.clientIp?.address,
      latencyMs: elapsedMs(f.started),
    };
    if (log) this.o.log.info({ access: f.door, ...line, traceparent: f.traceparent }, "decision");
    if (feed) {
      const out: DecisionLine = {
        at: Date.now(),
        rpc: f.door,
        decisionId: line.decisionId,
        allowed,
        reason: line.reason,
        latencyMs: line.latencyMs,
      };
      if (line.keyId) out.keyId = line.keyId;
      if (line.endpoint) out.endpoint = line.endpoint;
      if (line.limit) out.limit = line.limit;
      if (line.clientIp) out.clientIp = line.clientIp;
      feed.publish(out);
    }
  }

  /** After an Envoy ShouldRateLimit decision. */
  decidedDescriptors(f: DescriptorFacts, d: DescriptorDecision): void {
    if (d.verdict)
      this.o.notifier?.descriptorsCharged(f.items, d.verdict.outcomes, {
        allowed: !d.over,
        cost: f.cost,
        local: d.decidedLocally,
      });
    f.items.forEach((it, i) => {
      if (it.limit.mode === "shadow" && d.verdict?.outcomes[i]?.exceeded)
        this.o.metrics.shadowDenials.inc({ rule: it.limit.name });
    });
    this.count(
      "ShouldRateLimit",
      !d.over,
      d.over ? "RATE_LIMITED" : "OK",
      undefined,
      d.decidedLocally,
    );
    const latencyMs = elapsedMs(f.started);
    const reason = d.over ? "OVER_LIMIT" : "OK";
    if (this.logs(!d.over)) {
      this.o.log.info(
        {
          access: "ShouldRateLimit",
          decisionId: d.decisionId,
          domain: f.domain,
          reason,
          allowed: !d.over,
          latencyMs,
          traceparent: f.traceparent,
        },
        "decision",
      );
    }
    this.o.feed?.publish({
      at: Date.now(),
      rpc: "ShouldRateLimit",
      decisionId: d.decisionId,
      allowed: !d.over,
      reason,
      domain: f.domain,
      latencyMs,
    });
  }

  /**
   * A refusal a door made itself, before or instead of a decision (an Envoy
   * request with invalid headers, a route naming no endpoint, a request a limit
   * cannot be decided for): counted and logged like a denial.
   */
  refused(
    door: Door,
    reason: string,
    ctx: {
      decisionId: string;
      started: bigint;
      traceparent: string | undefined;
      keyId?: string;
      tier?: string;
    },
  ): void {
    this.count(door, false, reason, ctx.tier, false);
    const latencyMs = elapsedMs(ctx.started);
    if (this.logs(false)) {
      this.o.log.info(
        {
          access: door,
          decisionId: ctx.decisionId,
          keyId: ctx.keyId,
          reason,
          allowed: false,
          latencyMs,
          traceparent: ctx.traceparent,
        },
        "decision",
      );
    }
    // The live view shows what the access log shows: a door's own refusal too.
    this.o.feed?.publish({
      at: Date.now(),
      rpc: door,
      decisionId: ctx.decisionId,
      allowed: false,
      reason,
      ...(ctx.keyId && { keyId: ctx.keyId }),
      latencyMs,
    });
  }

  /** After limits were charged: shadow limits that would have denied, or were skipped. */
  limitsCharged(f: RequestFacts, input: RateInput, r: RateDecision): void {
    this.o.notifier?.charged(input, r);
    for (const l of r.shadowSkipped) {
      this.o.metrics.shadowSkipped.inc({ rule: l.name });
      this.o.log.debug(
        { shadow: l.name, rpc: f.door, by: l.by, keyId: input.keyId || undefined },
        "shadow limit skipped: the request lacks its dimension",
      );
    }
    for (const l of r.shadowExceeded) {
      this.o.metrics.shadowDenials.inc({ rule: l.name });
      this.o.log.info(
        { shadow: l.name, rpc: f.door, keyId: input.keyId || undefined },
        "shadow limit would have denied",
      );
    }
  }

  /** A block this replica placed (BlockBook's listener). */
  placed(block: ActiveBlockEntry, origin: "limit" | "detection"): void {
    this.o.metrics.blocksPlaced.inc({ by: BLOCK_KIND[block.tag[0] ?? ""] ?? "other" });
    if (origin === "limit") {
      this.o.log.warn({ block: block.tag.slice(0, 2), until: block.until }, "subject blocked");
    }
  }

  private count(
    rpc: string,
    allowed: boolean,
    reason: string,
    tier: string | undefined,
    local: boolean,
  ): void {
    const decision = allowed ? "allow" : "deny";
    // Tier labels are bounded by the policy: a key of a removed tier counts as "other".
    const label = tier === undefined ? "none" : this.o.policy().tiers.has(tier) ? tier : "other";
    this.o.metrics.countDecision({ rpc, decision, reason, tier: label });
    if (local) this.o.metrics.localDecisions.inc({ rpc, decision });
  }

  /**
   * The events of a decision: an allowed request counts towards usage and
   * detection (keys presenting a secret); a denial is an `auth_failure`,
   * `permission_denied`, `rate_limited` or `blocked` event — one per decision.
   */
  private record(f: RequestFacts, d: Exclude<Decision, { kind: "incomplete" }>): void {
    const keyId = d.record?.id ?? "";
    const ip = f.clientIp?.address ?? "";
    const endpoint = d.endpoint?.name ?? "";
    if (d.kind === "allowed") {
      if (keyId && f.credential.kind === "secret")
        this.o.recorder.request(keyId, endpoint || "-", ip);
      return;
    }
    const type =
      d.kind === "blocked"
        ? "blocked"
        : d.reason === "RATE_LIMITED" || d.reason === "CREDITS_EXHAUSTED"
          ? "rate_limited"
          : AUTH_FAILURES.has(d.reason)
            ? "auth_failure"
            : "permission_denied";
    const attributes: Record<string, string> = {
      reason: d.reason,
      rpc: f.door,
      decision_id: d.decisionId,
    };
    const deciding = d.limits?.deciding;
    const limit = deciding === undefined ? undefined : d.limits?.limits[deciding]?.limit.name;
    if (limit && type !== "blocked") attributes.limit = limit;
    if (d.reason === "UNKNOWN_KEY" && f.credential.kind === "secret")
      attributes.key_fp = keyFingerprint(f.credential.secret);
    if (d.record) attributes.owner = d.record.owner;
    this.o.recorder.emit({
      type,
      ...(keyId
        ? { subject: keyId, subjectKind: "key" }
        : ip
          ? { subject: ip, subjectKind: "ip" }
          : { subject: f.subject || "anonymous", subjectKind: "caller" }),
      severity: type === "blocked" ? "medium" : type === "rate_limited" ? "info" : "low",
      endpoint,
      clientIp: ip,
      keyId,
      attributes,
    });
  }
}

function elapsedMs(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e6;
}
