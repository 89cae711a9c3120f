/**
 * Real-time detection over the event flow.
 *
 * Every batch of observations (security events, plus one `request`
 * observation per allowed request with a key) is matched against each rule:
 * type and `where` filters, then grouped by the rule's subject (IP, key, owner
 * or event subject). An observation may stand for many events (`weight`: a
 * key's requests, or Tollgate's own repeated failures counted since the last
 * batch) and many distinct unknown keys (`keyFps`). Each (rule, subject) group
 * becomes one atomic store update, so counters are shared by every replica:
 *
 * - threshold: the window holds one weighted member per batch (the group's
 *   event count); fires when the weights add up to ≥ count.
 * - distinct: the window holds the distinct IPs / keys seen; fires at ≥ count.
 * - new_source: the key's history holds the networks it was used from; fires
 *   when a network is new and the history was not empty (a first use is a baseline).
 * - spike: requests per bucket against an exponentially weighted baseline of
 *   the key's past buckets; fires above factor × baseline.
 *
 * A rule fires at most once per subject per cool-down (the store takes the
 * cool-down atomically with the update). A firing rule raises an alert and,
 * with `action: { block }`, blocks the subject first so the alert says until when.
 *
 * Bounded state: before its updates, each rule's subjects of the batch are
 * marked as seen in the store's per-rule tracking (where it has one); beyond
 * `maxSubjects` the least recently seen subjects are forgotten (their state
 * dropped), so a flood of one-off subjects cannot grow the store without end
 * while a subject that keeps failing stays tracked.
 */

import type { DetectionRule } from "../policy/detection-rules.js";
import { normaliseIp } from "../subjects/ip-address.js";
import { subjectTag } from "../subjects/subject-tag.js";
import type { Clock } from "../util/clock.js";
import { newDecisionId } from "../util/ids.js";
import type { DetectionStore } from "./detection-store.js";
import type { Alert, SecurityEvent, SubjectKind } from "./event.js";
import { networkOf } from "./network.js";

/**
 * An event or request observation. `weight` is how many events (requests,
 * failures) it stands for (default 1); `keyFps` the distinct unknown-key
 * fingerprints among them (default: the `key_fp` attribute, if any).
 */
export type Observation = SecurityEvent & { weight?: number; keyFps?: readonly string[] };

/** Default of DetectionEngineOptions.maxSubjects. */
export const DEFAULT_MAX_SUBJECTS = 10_000;

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
  /** Most subjects one rule tracks over all replicas (stores with tracking). Default DEFAULT_MAX_SUBJECTS. */
  maxSubjects?: number;
  /** Told how many subjects a rule just forgot for the cap (metric, log). */
  onForgotten?: (rule: string, count: number) => void;
}

interface Group {
  rule: DetectionRule;
  tag: string;
  subject: string;
  kind: SubjectKind;
  members: Set<string>;
  /** Events (or requests) the group's observations stand for. */
  weight: number;
}

/** Evaluates rules on batches of observations. */
export class DetectionEngine {
  constructor(private readonly o: DetectionEngineOptions) {}

  /** Evaluates a batch; resolves to the alerts it fired. Throws if the store fails. */
  async evaluate(batch: readonly Observation[]): Promise<Alert[]> {
    const rules = this.o.rules();
    if (rules.length === 0 || batch.length === 0) return [];
    const fired = await Promise.all(rules.map((rule) => this.evaluateRule(rule, batch)));
    return fired.flat();
  }

  private async evaluateRule(rule: DetectionRule, batch: readonly Observation[]): Promise<Alert[]> {
    const groups = new Map<string, Group>();
    const cap = memberCap(rule);
    for (const e of batch) {
      if (!rule.events.has(e.type) || !passesWhere(rule, e)) continue;
      const s = subjectOf(rule, e);
      if (!s) continue;
      const members = membersOf(rule, e);
      if (members.length === 0) continue;
      let g = groups.get(s.tag);
      if (!g) {
        g = { rule, ...s, members: new Set(), weight: 0 };
        groups.set(s.tag, g);
      }
      // The window keeps at most `cap` members: more from one batch add nothing.
      for (const m of members) if (g.members.size < cap) g.members.add(m);
      g.weight += e.weight ?? 1;
    }
    if (groups.size === 0) return [];
    const { store } = this.o;
    if (store.track) {
      const gone = await store.track({
        rule: rule.name,
        tags: [...groups.keys()],
        lifetimeMs: stateMs(rule),
        cap: this.o.maxSubjects ?? DEFAULT_MAX_SUBJECTS,
      });
      if (gone.length > 0) {
        for (const t of gone) groups.delete(t);
        this.o.onForgotten?.(rule.name, gone.length);
        await store.forget?.(rule.name, gone);
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
        requests: g.weight,
        bucketMs: r.bucketMs,
        alpha: r.alpha,
        factor: r.factor,
        minHistory: r.minHistory,
        minRequests: r.minRequests,
        cooldownMs: r.cooldownMs,
        ttlMs: stateMs(r),
      });
      if (!s.fired) return undefined;
      detail = `${s.current} requests in ${r.bucketMs / 1000}s, ${(s.current / Math.max(s.baseline, 1e-9)).toFixed(1)}× its baseline of ${s.baseline.toFixed(1)}`;
    } else {
      const w = await this.o.store.window({
        tag: g.tag,
        rule: r.name,
        mode: r.kind === "new_source" ? "new" : r.kind === "threshold" ? "sum" : "count",
        // A threshold window holds one member per batch weighing the batch's events.
        members:
          r.kind === "threshold"
            ? [`${g.weight}:${newDecisionId(this.o.clock.now())}`]
            : [...g.members],
        windowMs: stateMs(r),
        threshold: r.kind === "new_source" ? 1 : r.count,
        cap: memberCap(r),
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

/** Most members a rule's window keeps (threshold: members weigh ≥ 1 each, so count of them always suffice). */
function memberCap(rule: DetectionRule): number {
  return rule.kind === "new_source" ? 1000 : rule.kind === "spike" ? 1 : rule.count;
}

/** How long a rule's state for a subject lasts unseen, ms. */
function stateMs(rule: DetectionRule): number {
  switch (rule.kind) {
    case "threshold":
    case "distinct":
      return rule.withinMs;
    case "new_source":
      return rule.historyMs;
    case "spike":
      return Math.max(
        rule.bucketMs * rule.minHistory * 4,
        Math.ceil(rule.bucketMs / rule.alpha) * 8,
      );
  }
}

/** What the rule's window holds for this observation; empty: it does not count. */
function membersOf(rule: DetectionRule, e: Observation): readonly string[] {
  switch (rule.kind) {
    case "threshold":
    case "spike":
      // Counted by weight, not by member.
      return ["w"];
    case "distinct": {
      if (rule.distinct === "ip") {
        const ip = e.clientIp ? normaliseIp(e.clientIp)?.address : undefined;
        return ip ? [ip] : [];
      }
      // A recognised key by id, unknown ones by their fingerprints (never the secret).
      if (e.keyId) return [`k:${e.keyId}`];
      const fps = e.keyFps ?? (e.attributes.key_fp ? [e.attributes.key_fp] : []);
      return fps.map((fp) => `f:${fp}`);
    }
    case "new_source": {
      const n = e.clientIp ? networkOf(e.clientIp, rule.ipv4Prefix, rule.ipv6Prefix) : undefined;
      return n ? [n] : [];
    }
  }
}
