import type { EnvoyNode } from "../policy/envoy-rules.js";
import {
  effectiveLimits,
  type Limit,
  loadPolicyFile,
  type Policy,
  PolicyError,
} from "../policy/policy.js";

/** `tollgate check-config FILE`: validates a policy and prints its effective table. */
export async function checkConfigCommand(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h") || args.length !== 1) {
    process.stdout.write(
      "Usage: tollgate check-config FILE\n  Validates a policy file; prints the effective table or every error.\n",
    );
    return args.length === 1 ? 0 : 2;
  }
  try {
    const policy = await loadPolicyFile(args[0] as string);
    process.stdout.write(formatPolicy(policy));
    return 0;
  } catch (err) {
    if (err instanceof PolicyError) {
      // One problem per line, each with its field's path.
      const n = err.issues.length;
      process.stderr.write(
        n === 0
          ? `invalid policy: ${err.message}\n`
          : `invalid policy: ${err.source}: ${n} ${n === 1 ? "error" : "errors"}\n${err.issues.map((i) => `  ${i}\n`).join("")}`,
      );
      return 1;
    }
    throw err;
  }
}

/** The effective policy: tiers, endpoints, and the tier × endpoint table of limits. */
export function formatPolicy(p: Policy): string {
  const lines = [`policy ${p.source}: OK`, "", `tiers (default ${p.defaultTier}):`];
  for (const [name, t] of p.tiers)
    lines.push(`  ${name}${t.description ? `  — ${t.description}` : ""}`);
  lines.push("", "endpoints (first match wins; paths matched after normalisation):");
  const rows = p.endpoints.map((e) => [
    e.name,
    e.methods ? [...e.methods].join(",") : "*",
    e.pattern,
    e.scopes.join(" ") || "-",
    String(e.cost),
    e.failMode ?? p.defaults.failMode ?? "(setting)",
  ]);
  rows.push([
    "(no match)",
    "*",
    "*",
    "-",
    String(p.defaults.cost),
    p.defaults.failMode ?? "(setting)",
  ]);
  lines.push(
    ...table(["name", "method", "path", "scopes", "cost", "fail"], rows).map((l) => `  ${l}`),
  );
  lines.push("", "effective limits (tier × endpoint):");
  const eff: string[][] = [];
  for (const tier of p.tiers.keys()) {
    for (const e of [...p.endpoints, undefined]) {
      const limits = effectiveLimits(p, tier, e);
      const text = limits.length === 0 ? ["none"] : limits.map(describeLimit);
      for (const [k, t] of text.entries())
        eff.push(k === 0 ? [tier, e?.name ?? "(no match)", t] : ["", "", t]);
    }
  }
  lines.push(...table(["tier", "endpoint", "limits"], eff).map((l) => `  ${l}`));
  const b = p.blocking;
  lines.push(
    "",
    b
      ? `blocking: ${[...b.by].join(", ")} blocked after ${b.after} denials within ${ms(b.withinMs)}, for ${ms(b.durationMs)} ×${b.factor} per repeat, max ${ms(b.maxDurationMs)}, forgotten after ${ms(b.forgetAfterMs)}`
      : "blocking: off",
  );
  lines.push("", ...formatEnvoy(p));
  lines.push("", ...formatDetection(p));
  return `${lines.join("\n")}\n`;
}

/** The envoy_ratelimit domains: one row per descriptor path, with its limit. */
function formatEnvoy(p: Policy): string[] {
  if (p.envoyDomains.size === 0) return ["envoy_ratelimit: no domains"];
  const rows: string[][] = [];
  const walk = (domain: string, nodes: readonly EnvoyNode[], trail: string[]) => {
    for (const n of nodes) {
      const path = [...trail, `${n.key}${n.value === undefined ? "" : `=${n.value}`}`];
      const limit = n.unlimited
        ? "unlimited"
        : n.limit
          ? `${n.requestsPerUnit}/${n.unit}${n.limit.mode === "shadow" ? " [shadow]" : ""}`
          : "-";
      rows.push([domain, path.join(" → "), limit]);
      walk(domain, n.children, path);
    }
  };
  for (const [domain, nodes] of p.envoyDomains) walk(domain, nodes, []);
  return [
    "envoy_ratelimit (descriptors; key without a value: one bucket per value):",
    ...table(["domain", "descriptor", "limit"], rows).map((l) => `  ${l}`),
  ];
}

/** Detection rules and webhooks in words (never a webhook secret). */
function formatDetection(p: Policy): string[] {
  const { rules, webhooks } = p.detection;
  if (rules.length === 0) return ["detection: no rules"];
  const rows = rules.map((r) => {
    const what =
      r.kind === "threshold"
        ? `≥${r.count} events within ${ms(r.withinMs)} per ${r.by}`
        : r.kind === "distinct"
          ? `≥${r.count} distinct ${r.distinct}s within ${ms(r.withinMs)} per ${r.by}`
          : r.kind === "new_source"
            ? `key used from a new /${r.ipv4Prefix} (v4) or /${r.ipv6Prefix} (v6) network, history ${ms(r.historyMs)}`
            : `key rate above ${r.factor}× its baseline (buckets of ${ms(r.bucketMs)})`;
    return [
      r.name,
      r.kind,
      what,
      [...r.events].join(",") || "*",
      r.severity,
      ms(r.cooldownMs),
      r.blockMs === undefined ? "alert" : `block ${ms(r.blockMs)}`,
    ];
  });
  const out = ["detection rules:"];
  out.push(
    ...table(["name", "kind", "fires when", "events", "severity", "cool-down", "action"], rows).map(
      (l) => `  ${l}`,
    ),
  );
  out.push(
    webhooks.length === 0
      ? "webhooks: none"
      : `webhooks: ${webhooks.map((w) => `${w.name} (≥${w.minSeverity}, ${w.maxAttempts} attempts)`).join("; ")}`,
  );
  return out;
}

/** One limit in words, e.g. `per-key: 10/1s burst 20 by key [enforce]`. */
export function describeLimit(l: Limit): string {
  const amount =
    l.kind === "rate"
      ? `${l.requests}/${ms(l.periodMs)} burst ${l.burst}`
      : `${l.requests}/${l.window} (UTC)`;
  return `${l.name}: ${l.kind} ${amount} by ${l.by} [${l.mode}]`;
}

function ms(v: number): string {
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

/** Left-aligned columns. */
export function table(head: string[], rows: string[][]): string[] {
  if (rows.length === 0) return [];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const fmt = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [fmt(head), fmt(widths.map((w) => "-".repeat(w))), ...rows.map(fmt)];
}
