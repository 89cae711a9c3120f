/**
 * The optional PrometheusRule and Grafana dashboard ConfigMap: nothing by
 * default; when enabled, valid objects whose content is the chart's files
 * (files/tollgate-rules.yaml, files/tollgate-dashboard.json) exactly, so the
 * promtool-tested rules and the checked dashboard are what a cluster gets.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { CHART, NAMESPACE, one, render } from "./render.js";

const file = (p: string) => readFileSync(`${CHART}/${p}`, "utf8");

describe("PrometheusRule", () => {
  it("is disabled by default", async () => {
    const docs = await render();
    expect(docs.some((d) => d.kind === "PrometheusRule")).toBe(false);
  });

  it("carries files/tollgate-rules.yaml as its spec, alert templates untouched by Helm", async () => {
    const docs = await render({
      "prometheusRule.enabled": true,
      "prometheusRule.labels": { release: "kube-prometheus-stack" },
    });
    const rule = one(docs, "PrometheusRule");
    expect(rule.apiVersion).toBe("monitoring.coreos.com/v1");
    expect(rule.metadata.namespace).toBe(NAMESPACE);
    expect(rule.metadata.labels.release).toBe("kube-prometheus-stack");
    expect(rule.metadata.labels["app.kubernetes.io/name"]).toBe("tollgate");
    expect(rule.spec).toEqual(parse(file("files/tollgate-rules.yaml")));
    const annotations = JSON.stringify(rule.spec.groups);
    expect(annotations).toContain("{{ $labels.namespace }}");
    expect(rule.spec.groups.flatMap((g: { rules: unknown[] }) => g.rules).length).toBeGreaterThan(
      10,
    );
  });

  it("is the file deploy/prometheus/ links to", () => {
    expect(readFileSync(new URL("../../deploy/prometheus/tollgate-rules.yaml", import.meta.url), "utf8")).toBe(
      file("files/tollgate-rules.yaml"),
    );
  });
});

describe("Grafana dashboard ConfigMap", () => {
  it("is disabled by default", async () => {
    const docs = await render();
    expect(docs.some((d) => d.kind === "ConfigMap" && d.metadata.name.endsWith("-dashboard"))).toBe(
      false,
    );
  });

  it("holds files/tollgate-dashboard.json byte for byte, labelled for Grafana's sidecar", async () => {
    const docs = await render({ "grafanaDashboard.enabled": true });
    const cm = one(docs, "ConfigMap", "-dashboard");
    expect(cm.metadata.namespace).toBe(NAMESPACE);
    expect(cm.metadata.labels.grafana_dashboard).toBe("1");
    expect(cm.metadata.annotations).toBeUndefined();
    expect(Object.keys(cm.data)).toEqual(["tollgate-dashboard.json"]);
    expect(cm.data["tollgate-dashboard.json"]).toBe(file("files/tollgate-dashboard.json"));
    expect(JSON.parse(cm.data["tollgate-dashboard.json"]).uid).toBe("tollgate-overview");
  });

  it("takes the sidecar's label, a folder annotation and another namespace from values", async () => {
    const docs = await render({
      "grafanaDashboard.enabled": true,
      // Helm merges maps: null drops the default label.
      "grafanaDashboard.labels": { dashboards: "tollgate", grafana_dashboard: null },
      "grafanaDashboard.annotations": { grafana_folder: "Tollgate" },
      "grafanaDashboard.namespace": "monitoring",
    });
    const cm = one(docs, "ConfigMap", "-dashboard");
    expect(cm.metadata.namespace).toBe("monitoring");
    expect(cm.metadata.labels.dashboards).toBe("tollgate");
    expect(cm.metadata.labels.grafana_dashboard).toBeUndefined();
    expect(cm.metadata.annotations).toEqual({ grafana_folder: "Tollgate" });
  });

  it("is the file deploy/grafana/ links to", () => {
    expect(readFileSync(new URL("../../deploy/grafana/tollgate-dashboard.json", import.meta.url), "utf8")).toBe(
      file("files/tollgate-dashboard.json"),
    );
  });

  it.each([
    ["grafanaDashboard.namespace", "Not_A_Namespace"],
    ["grafanaDashboard.labels", { grafana_dashboard: 1 }],
    ["prometheusRule.labels", { release: true }],
    ["prometheusRule.enabled", "yes"],
  ])("refuses %s = %j", async (key, value) => {
    await expect(render({ [key]: value })).rejects.toThrow(/schema/i);
  });
});
