/**
 * Every query of the Grafana dashboard is valid PromQL, as Prometheus itself
 * parses it: the queries (panels, variables, annotations), with Grafana's
 * variables replaced by values, become recording rules that `promtool check
 * rules` must accept. (The alert rules are checked and unit-tested by promtool
 * in .ci/run; test/unit/dashboard-and-rules.test.ts checks the names.)
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";

const run = promisify(execFile);
const PROMTOOL_MISSING =
  "promtool not found: install Debian's prometheus package (apt-get install -y prometheus), which .ci/run does";

// biome-ignore lint/suspicious/noExplicitAny: the dashboard JSON is walked structurally
type Json = Record<string, any>;
const dashboard = JSON.parse(
  readFileSync(
    new URL("../../helm/tollgate/files/tollgate-dashboard.json", import.meta.url),
    "utf8",
  ),
) as Json;

/** A Grafana query as Prometheus would receive it (variables replaced as Grafana would). */
function asPromql(query: string): string {
  const lv = /^label_values\((.*),\s*\w+\s*\)$/.exec(query.trim());
  return (lv?.[1] ?? query)
    .replaceAll("$__rate_interval", "2m")
    .replaceAll("$__interval", "1m")
    .replace(/\$\{?\w+\}?/g, ".*");
}

/** Every query of the dashboard, named for where it is. */
function queries(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  const panels = (dashboard.panels as Json[]).flatMap((p) => [p, ...(p.panels ?? [])]);
  for (const p of panels)
    for (const t of p.targets ?? []) out.push({ where: `panel ${p.id} ${t.refId}`, expr: t.expr });
  for (const v of dashboard.templating.list as Json[])
    if (v.type === "query")
      out.push({
        where: `variable ${v.name}`,
        expr: typeof v.query === "string" ? v.query : v.query.query,
      });
  for (const a of dashboard.annotations.list as Json[])
    if (a.expr) out.push({ where: `annotation ${a.name}`, expr: a.expr });
  return out;
}

const dir = mkdtempSync(join(tmpdir(), "tollgate-dashboard-promql-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the Grafana dashboard's queries", () => {
  it("all parse as PromQL (promtool check rules)", async () => {
    const list = queries();
    expect(list.length).toBeGreaterThan(40);
    const rules = list.map((q, i) => ({
      record: `tollgate_dashboard:query_${i}`,
      expr: asPromql(q.expr),
    }));
    const file = join(dir, "dashboard-queries.yaml");
    writeFileSync(file, stringify({ groups: [{ name: "dashboard", rules }] }));
    let result: { stdout: string; stderr: string };
    try {
      result = await run("promtool", ["check", "rules", file]);
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
      if (e.code === "ENOENT") throw new Error(PROMTOOL_MISSING);
      // Name the query promtool refused (its message carries the rule's index).
      throw new Error(
        `${e.stdout}${e.stderr}\n${list.map((q, i) => `${i}: ${q.where}`).join("\n")}`,
      );
    }
    expect(result.stdout).toContain(`SUCCESS: ${list.length} rules found`);
  });

  it("the check itself refuses a query that is not PromQL", async () => {
    const file = join(dir, "broken.yaml");
    writeFileSync(
      file,
      stringify({
        groups: [
          {
            name: "x",
            rules: [{ record: "x:y", expr: asPromql("sum by (rpc (tollgate_decisions_total)") }],
          },
        ],
      }),
    );
    await expect(run("promtool", ["check", "rules", file])).rejects.toThrow();
  });
});
