/**
 * The Grafana dashboard and the Prometheus rules cannot drift from the code:
 * every metric they query is one `Metrics` registers (histogram `_bucket`,
 * `_sum`, `_count` included), every label they match, group by, show in a
 * legend or template into an alert is one that metric has (or one the scrape
 * adds), every alert is documented in docs/alerts.md and has promtool test
 * cases that fire and that do not, and the dashboard is one Grafana 10/11 loads
 * with the variables every query filters by.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { Metrics } from "../../src/observability/metrics.js";
import { promqlRefs, templateLabels } from "../helpers/promql-refs.js";

const root = new URL("../../", import.meta.url);
const read = (p: string) => readFileSync(new URL(p, root), "utf8");
const RULES = "helm/tollgate/files/tollgate-rules.yaml";
const RULE_TESTS = "deploy/prometheus/tollgate-rules.test.yaml";
const DASHBOARD = "helm/tollgate/files/tollgate-dashboard.json";

/** Labels a Kubernetes scrape (Prometheus Operator or kubernetes_sd relabelling) adds. */
const TARGET_LABELS = ["namespace", "job", "pod", "instance", "service", "endpoint", "container"];

/** Every series name the registry exports → its labels. */
function exported(): Map<string, string[]> {
  const names = new Map<string, string[]>();
  const metrics = new Metrics(() => 0);
  for (const m of metrics.registry.getMetricsAsArray()) {
    const labels = [...((m as { labelNames?: readonly string[] }).labelNames ?? [])];
    const type = String(m.type);
    if (type === "histogram") {
      names.set(`${m.name}_bucket`, [...labels, "le"]);
      names.set(`${m.name}_sum`, labels);
      names.set(`${m.name}_count`, labels);
    } else if (type === "summary") {
      names.set(m.name, [...labels, "quantile"]);
      names.set(`${m.name}_sum`, labels);
      names.set(`${m.name}_count`, labels);
    } else names.set(m.name, labels);
  }
  return names;
}
const EXPORTED = exported();

/** Problems of one expression (and the label templates shown from its result). */
function problems(expr: string, templates: string[] = []): string[] {
  const out: string[] = [];
  const refs = promqlRefs(expr);
  if (refs.selectors.length === 0) out.push("queries no tollgate_ metric");
  for (const f of refs.foreign) out.push(`selects ${f}, not a Tollgate metric`);
  const available = new Set(TARGET_LABELS);
  for (const s of refs.selectors) {
    const labels = EXPORTED.get(s.metric);
    if (!labels) {
      out.push(`${s.metric} is not exported by src/observability/metrics.ts`);
      continue;
    }
    for (const l of labels) available.add(l);
    for (const l of s.labels)
      if (!labels.includes(l) && !TARGET_LABELS.includes(l)) out.push(`${s.metric} has no ${l}`);
  }
  for (const l of refs.grouping) if (!available.has(l)) out.push(`groups by ${l}, on no metric`);
  // What a result can carry: its grouping labels when it aggregates, else the metrics' own.
  const shown = refs.grouping.length ? new Set(refs.grouping) : available;
  for (const t of templates)
    for (const l of templateLabels(t)) if (!shown.has(l)) out.push(`shows ${l}, not in the result`);
  return out.map((p) => `${p}: ${expr.replace(/\s+/g, " ").trim()}`);
}

describe("the PromQL check itself", () => {
  it("accepts real metrics and labels, refuses unknown names, labels and legends", () => {
    expect(
      problems('sum by (le, rpc) (rate(tollgate_rpc_duration_seconds_bucket{pod=~"$pod"}[5m]))', [
        "{{rpc}}",
      ]),
    ).toEqual([]);
    expect(problems("rate(tollgate_no_such_total[5m])")[0]).toMatch(/not exported/);
    expect(problems('tollgate_breaker_state{brekaer="redis"}')[0]).toMatch(/has no brekaer/);
    expect(problems("sum by (reson) (tollgate_decisions_total)")[0]).toMatch(/groups by reson/);
    expect(problems("sum by (reason) (tollgate_decisions_total)", ["{{tier}}"])[0]).toMatch(
      /shows tier/,
    );
    expect(problems('up{job="x"}')).toEqual(
      expect.arrayContaining([expect.stringMatching(/no tollgate_ metric/)]),
    );
    // The summary's value is not a histogram's bucket.
    expect(problems("tollgate_rpc_duration_seconds")[0]).toMatch(/not exported/);
  });
});

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules = (parse(read(RULES)) as { groups: { name: string; rules: Rule[] }[] }).groups.flatMap(
  (g) => g.rules,
);
const alerts = rules.filter((r): r is Rule & { alert: string } => typeof r.alert === "string");

describe("the Prometheus rules (helm/tollgate/files/tollgate-rules.yaml)", () => {
  it("query only exported metrics and labels, and template only labels the alert has", () => {
    expect(alerts.length).toBeGreaterThanOrEqual(10);
    const found = rules.flatMap((r) =>
      problems(r.expr, [...Object.values(r.annotations ?? {}), ...Object.values(r.labels ?? {})]),
    );
    expect(found).toEqual([]);
  });

  it("give every alert a for, a severity, a summary, a description and its runbook", () => {
    const alertsDoc = read("docs/alerts.md");
    for (const a of alerts) {
      expect(a.for, a.alert).toMatch(/^\d+[smh]$/);
      expect(["critical", "warning", "info"], a.alert).toContain(a.labels?.severity);
      expect(a.annotations?.summary, a.alert).toBeTruthy();
      expect(a.annotations?.description, a.alert).toBeTruthy();
      expect(a.annotations?.runbook_url, a.alert).toBe(
        `https://github.com/tollgate/tollgate/blob/main/docs/alerts.md#${a.alert.toLowerCase()}`,
      );
      expect(alertsDoc, a.alert).toMatch(new RegExp(`^### ${a.alert}$`, "m"));
    }
    // …and the page documents no alert that is not there.
    const documented = [...alertsDoc.matchAll(/^### (Tollgate\w+)$/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual(alerts.map((a) => a.alert).sort());
  });

  it("have promtool cases for every alert: one that fires and one that does not", () => {
    const suite = parse(read(RULE_TESTS)) as {
      rule_files: string[];
      tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
    };
    expect(suite.rule_files).toEqual(["tollgate-rules.yaml"]);
    const cases = suite.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const a of alerts) {
      const mine = cases.filter((c) => c.alertname === a.alert);
      expect(
        mine.some((c) => c.exp_alerts.length > 0),
        `${a.alert} fires`,
      ).toBe(true);
      expect(
        mine.some((c) => c.exp_alerts.length === 0),
        `${a.alert} does not fire`,
      ).toBe(true);
    }
  });
});

// biome-ignore lint/suspicious/noExplicitAny: the dashboard JSON is walked structurally
type Json = Record<string, any>;
const dashboard = JSON.parse(read(DASHBOARD)) as Json;
/** Every panel, rows' nested panels included. */
const panels: Json[] = (dashboard.panels as Json[]).flatMap((p) => [p, ...(p.panels ?? [])]);
const queryPanels = panels.filter((p) => p.type !== "row");
const variables = dashboard.templating.list as Json[];
/** Grafana's reference to the `datasource` variable (a Grafana placeholder, not a JS template). */
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's syntax, compared literally
const DATASOURCE_UID = "${datasource}";

describe("the Grafana dashboard (helm/tollgate/files/tollgate-dashboard.json)", () => {
  it("queries only exported metrics and labels, in panels, variables and annotations", () => {
    const found = [
      ...queryPanels.flatMap((p) =>
        (p.targets as Json[]).flatMap((t) => problems(t.expr, [t.legendFormat ?? ""])),
      ),
      ...variables
        .filter((v) => v.type === "query")
        .flatMap((v) => problems(typeof v.query === "string" ? v.query : v.query.query)),
      ...(dashboard.annotations.list as Json[])
        .filter((a) => a.expr)
        .flatMap((a) => problems(a.expr, [a.titleFormat ?? ""])),
    ];
    expect(found).toEqual([]);
  });

  it("is a Grafana 10/11 dashboard with a Prometheus data source variable used everywhere", () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dashboard.uid).toBe("tollgate-overview");
    // Loaded by Grafana's sidecar as is: no import-time inputs, no fixed data source.
    expect(dashboard.__inputs).toBeUndefined();
    const ds = variables.find((v) => v.name === "datasource");
    expect(ds).toMatchObject({ type: "datasource", query: "prometheus" });
    for (const p of queryPanels) {
      expect(p.datasource, p.title).toEqual({ type: "prometheus", uid: DATASOURCE_UID });
      expect(p.targets.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets) expect(t.datasource, p.title).toEqual(p.datasource);
      expect(p.description, p.title).toBeTruthy();
    }
  });

  it("filters every panel query by the namespace, job and pod variables", () => {
    expect(variables.map((v) => v.name)).toEqual(["datasource", "namespace", "job", "pod"]);
    for (const p of queryPanels)
      for (const t of p.targets as Json[])
        for (const m of String(t.expr).matchAll(/tollgate_\w+(\{[^}]*\})?/g))
          expect(m[1] ?? "", `${p.title}: ${m[0]}`).toMatch(
            /namespace=~"\$namespace", job=~"\$job", pod=~"\$pod"/,
          );
  });

  it("has unique panel ids and no overlapping panels", () => {
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const boxes = panels.map((p) => ({ title: p.title, ...p.gridPos }) as Json);
    for (const [i, a] of boxes.entries()) {
      expect(a.x + a.w, a.title).toBeLessThanOrEqual(24);
      for (const b of boxes.slice(i + 1)) {
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
        expect(overlap, `${a.title} / ${b.title}`).toBe(false);
      }
    }
  });

  it("shows what operators asked for: decisions, latency, Redis, breakers, cache, events, alerts, reloads", () => {
    const used = new Set(
      queryPanels.flatMap((p) =>
        (p.targets as Json[]).flatMap((t) => promqlRefs(t.expr).selectors.map((s) => s.metric)),
      ),
    );
    for (const m of [
      "tollgate_decisions_total",
      "tollgate_rpc_duration_seconds_bucket",
      "tollgate_redis_command_duration_seconds_bucket",
      "tollgate_redis_errors_total",
      "tollgate_breaker_state",
      "tollgate_key_cache_lookups_total",
      "tollgate_events_recorded_total",
      "tollgate_alerts_total",
      "tollgate_policy_reloads_total",
      "tollgate_store_durable",
      "tollgate_local_decisions_total",
      "tollgate_fail_closed_total",
    ])
      expect(used, m).toContain(m);
  });
});

describe("Metrics", () => {
  it("exports both policy reload results from the start, so the first failure shows in increase()", async () => {
    const text = await new Metrics(() => 0, { processMetrics: false }).registry.metrics();
    expect(text).toContain('tollgate_policy_reloads_total{result="success"} 0');
    expect(text).toContain('tollgate_policy_reloads_total{result="failure"} 0');
  });
});
