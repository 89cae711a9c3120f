/**
 * Real-time detection over the event flow.
 *
 * Every batch of observations (stored security events, plus one `request`
 * observation per allowed request with a key) is matched against each rule:
 * type and `where` filters, then grouped by the rule's subject (IP, key, owner
 * or event subject). Each (rule, subject) group becomes one atomic store update,
 * so counters are shared by every replica:
 *
 * - threshold: the window holds one member per event (its id); fires at ≥ count.
 * - distinct: the window holds the distinct IPs / keys seen; fires at ≥ count.
 * - new_source: the key's history holds the networks it was used from; fires
 *   when a network is new and the history was not empty (a first use is a baseline).
 * - spike: requests per bucket against an exponentially weighted baseline of
 *   the key's past buckets; fires above factor × baseline.
 *
 * A rule fires at most once per subject per cool-down (the store takes the
 * cool-down atomically with the update). A firing rule raises an alert and,
 * with `action: { block }`, blocks the subject first so the alert says until when.
 */
import { normaliseIp } from "../keys/ip-rules.js";
import { subjectTag } from "../ratelimit/rate-limiter.js";
import type { DetectionStore } from "../store/detection-store.js";
import type { Clock } from "../util/clock.js";
import { newDecisionId } from "../util/ids.js";
import type { DetectionRule } from "./detection-rules.js";
import type { Alert, SecurityEvent, SubjectKind } from "./event.js";
import { networkOf } from "./network.js";

/** An event or request observation; `weight` is how many requests it stands for. */
export type Observation = SecurityEvent & { weight?: number };

/** Options of DetectionEngine. */
export interface DetectionEngineOptions {
  store: DetectionStore;
  /** The current rules (read per batch, so policy reloads apply at once). */
  rules: () => readonly DetectionRule[];
  clock: Clock;
  /** Blocks a subject tag for `durationMs` on every replica; resolves to the end (epoch ms). */
  block: (tag: string, durationMs: number) => Promise<number>;
  /** Delivers a fired alert (log, metric, stream, webhooks). */
  raise: (alert: Alert) => Promise<void>;
}

interface Group {
  rule: DetectionRule;
  tag: string;
  subject: string;
  kind: SubjectKind;
  members: Set<string>;
  requests: number;
}

/** Evaluates rules on batches of observations. */
export class DetectionEngine {
  constructor(private readonly o: DetectionEngineOptions) {}

  /** Evaluates a batch; resolves to the alerts it fired. Throws if the store fails. */
  async evaluate(batch: readonly Observation[]): Promise<Alert[]> {
    const rules = this.o.rules();
    if (rules.length === 0 || batch.length === 0) return [];
    const groups = new Map<string, Group>();
    for (const rule of rules) {
      for (const e of batch) {
        if (!rule.events.has(e.type) || !passesWhere(rule, e)) continue;
        const s = subjectOf(rule, e);
        if (!s) continue;
        const member = memberOf(rule, e);
        if (member === undefined) continue;
        const id = `${rule.name}\u0000${s.tag}`;
        let g = groups.get(id);
        if (!g) {
          g = { rule, ...s, members: new Set(), requests: 0 };
          groups.set(id, g);
        }
        g.members.add(member);
        g.requests += e.weight ?? 1;
      }
    }
    const fired = await Promise.all([...groups.values()].map((g) => this.apply(g)));
    return fired.filter((a): a is Alert => a !== undefined);
  }

  private async apply(g: Group): Promise<Alert | undefined> {
    const r = g.rule;
    let detail: string;
    if (r.kind === "spike") {
      const s = await this.o.store.spike({
        tag: g.tag,
        rule: r.name,
        requests: g.requests,
        bucketMs: r.bucketMs,
        alpha: r.alpha,
        factor: r.factor,
        minHistory: r.minHistory,
        minRequests: r.minRequests,
        cooldownMs: r.cooldownMs,
        ttlMs: Math.max(r.bucketMs * r.minHistory * 4, Math.ceil(r.bucketMs / r.alpha) * 8),
      });
      if (!s.fired) return undefined;
      detail = `${s.current} requests in ${r.bucketMs / 1000}s, ${(s.current / Math.max(s.baseline, 1e-9)).toFixed(1)}× its baseline of ${s.baseline.toFixed(1)}`;
    } else {
      const w = await this.o.store.window({
        tag: g.tag,
        rule: r.name,
        mode: r.kind === "new_source" ? "new" : "count",
        members: [...g.members],
        windowMs: r.kind === "new_source" ? r.historyMs : r.withinMs,
        threshold: r.kind === "new_source" ? 1 : r.count,
        cap: r.kind === "new_source" ? 1000 : r.count,
        cooldownMs: r.cooldownMs,
      });
      if (!w.fired) return undefined;
      detail =
        r.kind === "threshold"
          ? `${w.count} events (${[...r.events].join(", ")}) within ${r.withinMs / 1000}s`
          : r.kind === "distinct"
            ? `${w.count} distinct ${r.distinct === "ip" ? "IPs" : "keys"} within ${r.withinMs / 1000}s`
            : `used from a new network (${[...g.members].slice(0, 3).join(", ")})`;
    }
    const now = this.o.clock.now();
    let blockedUntil: number | undefined;
    if (r.blockMs !== undefined && g.kind !== "owner") {
      blockedUntil = await this.o.block(g.tag, r.blockMs);
    }
    const alert: Alert = {
      id: `al_${newDecisionId(now)}`,
      rule: r.name,
      severity: r.severity,
      subject: g.subject,
      subjectKind: g.kind,
      message: `${r.name}: ${g.kind} ${g.subject}: ${detail}${blockedUntil ? `; blocked until ${new Date(blockedUntil).toISOString()}` : ""}`,
      firedAt: now,
      ...(blockedUntil !== undefined && { blockedUntil }),
    };
    await this.o.raise(alert);
    return alert;
  }
}

function passesWhere(rule: DetectionRule, e: SecurityEvent): boolean {
  if (!rule.where) return true;
  for (const [attr, values] of rule.where) {
    const v = e.attributes[attr];
    if (v === undefined || !values.has(v)) return false;
  }
  return true;
}

/** The subject a rule counts this event under, with its tag; undefined if the event lacks it. */
function subjectOf(
  rule: DetectionRule,
  e: SecurityEvent,
): { tag: string; subject: string; kind: SubjectKind } | undefined {
  switch (rule.by) {
    case "ip": {
      const raw = e.clientIp || (e.subjectKind === "ip" ? e.subject : "");
      const ip = raw ? normaliseIp(raw)?.address : undefined;
      return ip ? { tag: subjectTag("ip", ip), subject: ip, kind: "ip" } : undefined;
    }
    case "key": {
      const id = e.keyId || (e.subjectKind === "key" ? e.subject : "");
      return id ? { tag: subjectTag("key", id), subject: id, kind: "key" } : undefined;
    }
    case "owner": {
      const owner = e.subjectKind === "owner" ? e.subject : (e.attributes.owner ?? "");
      return owner ? { tag: subjectTag("owner", owner), subject: owner, kind: "owner" } : undefined;
    }
    case "subject":
      return e.subject
        ? { tag: subjectTag("subject", e.subject), subject: e.subject, kind: "caller" }
        : undefined;
  }
}

/** What the rule's window holds for this event; undefined: the event does not count. */
function memberOf(rule: DetectionRule, e: SecurityEvent): string | undefined {
  switch (rule.kind) {
    case "threshold":
      return e.id;
    case "spike":
      return "r";
    case "distinct":
      if (rule.distinct === "ip") {
        const ip = e.clientIp ? normaliseIp(e.clientIp)?.address : undefined;
        return ip;
      }
      // A recognised key by id, an unknown one by its fingerprint (never the secret).
      return e.keyId
        ? `k:${e.keyId}`
        : e.attributes.key_fp
          ? `f:${e.attributes.key_fp}`
          : undefined;
    case "new_source":
      return e.clientIp ? networkOf(e.clientIp, rule.ipv4Prefix, rule.ipv6Prefix) : undefined;
  }
}
