/**
 * The effective policy as plain rows: what `tollgate check-config` prints and
 * the console's policy page shows, built in one place so the two can never
 * disagree. Pure data (strings and numbers, JSON-ready): the CLI lays the rows
 * out as text columns (cli/check-config-command.ts), the console sends them as
 * JSON. Never holds a webhook secret.
 */
import { crc32 } from "node:zlib";
import type { EnvoyNode } from "./envoy-rules.js";
import type { Notifications } from "./notification-rules.js";
import { type CreditPlan, effectiveLimits, type Limit, type Policy, takeSize } from "./policy.js";

/** One endpoint rule, in file order; the last row is "(no match)", the defaults. */
export interface EndpointRow {
  name: string;
  /** Comma-separated methods, or `*`. */
  method: string;
  /** The normalised path pattern. */
  path: string;
  /** Space-separated scopes, or `-`. */
  scopes: string;
  cost: string;
  /** `open`, `closed`, or `(setting)` when TOLLGATE_FAIL_MODE decides. */
  fail: string;
}

/** One limit of one (tier, endpoint) pair; `limit` is `none` when the pair has none. */
export interface LimitRow {
  tier: string;
  /** The endpoint's name, or `(no match)`. */
  endpoint: string;
  /** The limit in words (describeLimit), or `none`. */
  limit: string;
}

/** One envoy_ratelimit descriptor path. */
export interface EnvoyRow {
  domain: string;
  /** e.g. `remote_address` or `header_match=internal → path`. */
  descriptor: string;
  /** e.g. `50/second`, `unlimited`, `-` (a node that only nests others). */
  limit: string;
}

/** One rlqs bucket entry (Envoy rate_limit_quota). */
export interface RlqsRow {
  /** The domain, or `*` for "" (any other). */
  domain: string;
  /** e.g. `name=api, tenant=*`. */
  match: string;
  /** The limit in words (describeLimit). */
  limit: string;
  /** Units one assignment takes, and its TTL, e.g. `50 units, ttl 2s`. */
  assignment: string;
}

/** One detection rule in words. */
export interface DetectionRow {
  name: string;
  kind: string;
  firesWhen: string;
  /** Comma-separated event types, or `*`. */
  events: string;
  severity: string;
  cooldown: string;
  /** `alert`, or `block <duration>`. */
  action: string;
}

/** The effective policy, every section check-config prints. */
export interface PolicyTable {
  source: string;
  defaultTier: string;
  /** `credits`: the tier's credit plan in words (describeCredits), only when it has one. */
  tiers: { name: string; description: string; credits?: string }[];
  endpoints: EndpointRow[];
  /** Tier × endpoint × limit, tiers and endpoints in file order, then `(no match)`. */
  limits: LimitRow[];
  /** Blocking in one sentence, or `off`. */
  blocking: string;
  envoy: EnvoyRow[];
  /** The rlqs buckets; absent when there are none (the policyVersion of older policies stays). */
  rlqs?: RlqsRow[];
  detection: DetectionRow[];
  /** Webhooks by name, minimum severity and attempts (never a secret); `none` if none. */
  webhooks: string;
  /** The notifications in force, one line each; empty when none is configured. */
  notifications: string[];
}

/** The name of the row standing for requests that match no endpoint. */
export const NO_MATCH = "(no match)";

/** Builds the rows of a compiled policy (pure: same policy, same rows). */
export function policyTable(p: Policy): PolicyTable {
  const endpoints: EndpointRow[] = p.endpoints.map((e) => ({
    name: e.name,
    method: e.methods ? [...e.methods].join(",") : "*",
    path: e.pattern,
    scopes: e.scopes.join(" ") || "-",
    cost: String(e.cost),
    fail: e.failMode ?? p.defaults.failMode ?? "(setting)",
  }));
  endpoints.push({
    name: NO_MATCH,
    method: "*",
    path: "*",
    scopes: "-",
    cost: String(p.defaults.cost),
    fail: p.defaults.failMode ?? "(setting)",
  });
  const limits: LimitRow[] = [];
  for (const tier of p.tiers.keys()) {
    for (const e of [...p.endpoints, undefined]) {
      const endpoint = e?.name ?? NO_MATCH;
      const found = effectiveLimits(p, tier, e);
      if (found.length === 0) limits.push({ tier, endpoint, limit: "none" });
      for (const l of found) limits.push({ tier, endpoint, limit: describeLimit(l) });
    }
  }
  const b = p.blocking;
  const { rules, webhooks } = p.detection;
  const hooks =
    webhooks.length === 0
      ? "none"
      : webhooks.map((w) => `${w.name} (≥${w.minSeverity}, ${w.maxAttempts} attempts)`).join("; ");
  return {
    source: p.source,
    defaultTier: p.defaultTier,
    tiers: [...p.tiers].map(([name, t]) => ({
      name,
      description: t.description ?? "",
      // Only when set, so a policy without credits keeps its policyVersion.
      ...(t.credits && { credits: describeCredits(t.credits) }),
    })),
    endpoints,
    limits,
    blocking: b
      ? `${[...b.by].join(", ")} blocked after ${b.after} denials within ${formatDurationMs(b.withinMs)}, for ${formatDurationMs(b.durationMs)} ×${b.factor} per repeat, max ${formatDurationMs(b.maxDurationMs)}, forgotten after ${formatDurationMs(b.forgetAfterMs)}`
      : "off",
    envoy: envoyRows(p),
    ...(p.rlqs.size > 0 && { rlqs: rlqsRows(p) }),
    detection: rules.map((r) => ({
      name: r.name,
      kind: r.kind,
      firesWhen:
        r.kind === "threshold"
          ? `≥${r.count} events within ${formatDurationMs(r.withinMs)} per ${r.by}`
          : r.kind === "distinct"
            ? `≥${r.count} distinct ${r.distinct}s within ${formatDurationMs(r.withinMs)} per ${r.by}`
            : r.kind === "new_source"
              ? `key used from a new /${r.ipv4Prefix} (v4) or /${r.ipv6Prefix} (v6) network, history ${formatDurationMs(r.historyMs)}`
              : `key rate above ${r.factor}× its baseline (buckets of ${formatDurationMs(r.bucketMs)})`,
      events: [...r.events].join(",") || "*",
      severity: r.severity,
      cooldown: formatDurationMs(r.cooldownMs),
      action: r.blockMs === undefined ? "alert" : `block ${formatDurationMs(r.blockMs)}`,
    })),
    webhooks: hooks,
    notifications: notificationLines(p.notifications, hooks),
  };
}

/** The `notifications` section in words, one line per notice. */
export function notificationLines(n: Notifications, webhooks = "none"): string[] {
  if (!n.enabled) return [];
  const pct = (l: readonly number[]) =>
    l.length === 0 ? "none" : l.map((t) => `${t}%`).join(", ");
  const lines: string[] = [];
  if (n.quotaThresholds.length > 0)
    lines.push(`quota used: ${pct(n.quotaThresholds)} (every quota limit)`);
  for (const [name, list] of n.quotaByLimit) lines.push(`quota "${name}" used: ${pct(list)}`);
  if (n.creditThresholds.length > 0) lines.push(`credits spent: ${pct(n.creditThresholds)}`);
  if (n.creditsExhausted) lines.push("credits exhausted");
  if (n.keyExpiryMs !== undefined)
    lines.push(`key expiring within ${formatDurationMs(n.keyExpiryMs)}`);
  if (n.rotationDue) lines.push("rotation due (secret older than TOLLGATE_ROTATION_AGE_S)");
  lines.push(`severity: ${n.severity}; sent to webhooks: ${webhooks}`);
  return lines;
}

/**
 * A short version of the effective policy: 8 hex digits of a CRC-32 over its
 * rows (the source's name left out). The same on replicas enforcing the same
 * table, whatever file formatting or comments differ; a reload that changes
 * anything check-config shows changes it (barring a CRC-32 collision).
 */
export function policyVersion(p: Policy): string {
  const { source: _source, notifications, ...rest } = policyTable(p);
  // Left out when empty: a policy without notifications keeps the version it had before them.
  const rows = notifications.length > 0 ? { ...rest, notifications } : rest;
  return crc32(JSON.stringify(rows)).toString(16).padStart(8, "0");
}

/** The rlqs section: one row per bucket entry, in file order. */
function rlqsRows(p: Policy): RlqsRow[] {
  return [...p.rlqs].flatMap(([domain, buckets]) =>
    buckets.map((b) => ({
      domain: domain || "*",
      match: b.match.map((m) => `${m.key}=${m.value ?? "*"}`).join(", "),
      limit: describeLimit(b.limit),
      assignment: `${b.unitsPerAssignment} units, ttl ${formatDurationMs(b.ttlMs)}`,
    })),
  );
}

/** The envoy_ratelimit domains: one row per descriptor path, depth first, with its limit. */
function envoyRows(p: Policy): EnvoyRow[] {
  const rows: EnvoyRow[] = [];
  const walk = (domain: string, nodes: readonly EnvoyNode[], trail: string[]) => {
    for (const n of nodes) {
      const path = [...trail, `${n.key}${n.value === undefined ? "" : `=${n.value}`}`];
      const limit = n.unlimited
        ? "unlimited"
        : n.limit
          ? `${n.requestsPerUnit}/${n.unit}${n.limit.mode === "shadow" ? " [shadow]" : ""}`
          : "-";
      rows.push({ domain, descriptor: path.join(" → "), limit });
      walk(domain, n.children, path);
    }
  };
  for (const [domain, nodes] of p.envoyDomains) {
    const of = p.envoyAfterResponse.get(domain);
    // An after_response domain is charged after the response, never denies.
    if (of === undefined) walk(domain, nodes, []);
    else if (of === domain) walk(`${domain} (after response)`, nodes, []);
    else
      rows.push({
        domain: `${domain} (after response)`,
        descriptor: `the limits of ${of}`,
        limit: "-",
      });
  }
  return rows;
}

/**
 * A credit plan in words, e.g. `1000 credits, refilled monthly on day 1
 * (00:00 UTC), adding 1000 up to 5000`.
 */
export function describeCredits(c: CreditPlan): string {
  const refill =
    c.refill === "daily"
      ? "refilled daily (00:00 UTC)"
      : c.refill === "monthly"
        ? `refilled monthly on day ${c.refillDay} (00:00 UTC)`
        : "never refilled";
  const how = c.mode === "add" ? `, adding ${c.amount} up to ${c.cap}` : "";
  return `${c.amount} credits, ${refill}${how}`;
}

/** One limit in words, e.g. `per-key: rate 10/1s burst 20 by key [enforce]`. */
export function describeLimit(l: Limit): string {
  const amount =
    l.kind === "rate"
      ? `${l.requests}/${formatDurationMs(l.periodMs)} burst ${l.burst}`
      : l.kind === "credits" && l.credits
        ? describeCredits(l.credits)
        : `${l.requests}/${l.window} (UTC)`;
  const sync = l.batch
    ? ` [batched: takes ${takeSize(l)}, unused back after ${formatDurationMs(l.batch.flushMs)}]`
    : "";
  return `${l.name}: ${l.kind} ${amount} by ${l.by} [${l.mode}]${sync}`;
}

/**
 * The admission bounds of each distinct batched limit of the policy, one line
 * each (ratelimit/batched-store.ts): never more than the limit while the store
 * answers; at least the limit minus what R replicas hold (R × take).
 */
export function batchedBounds(p: Policy, replicas: number): string[] {
  const seen = new Map<string, string>();
  for (const tier of p.tiers.keys()) {
    for (const e of [...p.endpoints, undefined]) {
      for (const l of effectiveLimits(p, tier, e)) {
        if (!l.batch || seen.has(l.bucketId)) continue;
        const t = takeSize(l);
        const window =
          l.kind === "rate"
            ? `burst ${l.burst} + ${l.requests} per ${formatDurationMs(l.periodMs)}`
            : `${l.requests} per ${l.window}`;
        seen.set(
          l.bucketId,
          `${l.name} (by ${l.by}): admits at most the limit (${window}) over any window and, with demand above it, at least the limit − R × ${t} (R replicas; R = ${replicas}: − ${replicas * t}); unused units back within ${formatDurationMs(l.batch.flushMs)}; store down: what each replica holds (≤ ${t}), then the fail mode`,
        );
      }
    }
  }
  return [...seen.values()];
}

/** A duration in ms in the largest whole unit: `1d`, `10m`, `1500ms`. */
export function formatDurationMs(v: number): string {
  for (const [unit, n] of [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
  ] as const) {
    if (v % n === 0) return `${v / n}${unit}`;
  }
  return `${v}ms`;
}
