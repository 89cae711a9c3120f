/**
 * What a PromQL expression refers to, found without a full parser: enough to
 * check a dashboard's or a rules file's queries against the metrics Tollgate
 * really exports (test/unit/dashboard-and-rules.test.ts). It reads metric
 * selectors, their label matchers, grouping clauses (`by`, `without`, `on`,
 * `ignoring`, `group_left`, `group_right`) and Grafana's `label_values(…)`.
 */

/** One metric selector: its name and the labels its matchers name. */
export interface Selector {
  metric: string;
  labels: string[];
}

/** The metrics and labels an expression names. */
export interface PromqlRefs {
  selectors: Selector[];
  /** Labels of grouping clauses (and the label argument of label_values). */
  grouping: string[];
  /** Selectors (`name{…}`) whose name is not Tollgate's: nothing can check them. */
  foreign: string[];
}

const IDENT = /[a-zA-Z_:][a-zA-Z0-9_:]*/y;
const KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);

/** Strings can hold anything (`"$namespace"`, regexes): blank them before scanning. */
function blankStrings(expr: string): string {
  return expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
}

/** Label names of a comma-separated list (a grouping clause's contents). */
function labelList(s: string): string[] {
  return s
    .split(",")
    .map((l) => l.trim())
    .filter((l) => l !== "");
}

/** The metrics and labels `expr` refers to. */
export function promqlRefs(expr: string): PromqlRefs {
  const text = blankStrings(expr);
  const selectors: Selector[] = [];
  const grouping: string[] = [];
  const foreign: string[] = [];
  for (const m of text.matchAll(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g))
    grouping.push(...labelList(m[2] ?? ""));
  const lv = /label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$/.exec(text);
  if (lv?.[2]) grouping.push(lv[2]);
  // Walk identifiers; a Tollgate metric name is a selector, with or without matchers.
  for (let i = 0; i < text.length; ) {
    IDENT.lastIndex = i;
    const id = /[a-zA-Z_:]/.test(text[i] ?? "") && IDENT.exec(text);
    if (!id) {
      i++;
      continue;
    }
    const name = id[0];
    i += name.length;
    // Part of a longer token (a number's exponent, a duration like 5m): not a name.
    if (/[0-9.]/.test(text[i - name.length - 1] ?? "")) continue;
    const rest = text.slice(i);
    const braces = /^\s*\{([^}]*)\}/.exec(rest);
    if (name.startsWith("tollgate_")) {
      const labels = braces
        ? [...(braces[1] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map(
            (l) => l[1] as string,
          )
        : [];
      selectors.push({ metric: name, labels });
    } else if (braces && !KEYWORDS.has(name)) {
      foreign.push(name);
    }
    if (braces) i += braces[0].length;
  }
  return { selectors, grouping, foreign };
}

/** Labels a `{{label}}` Grafana legend or a `{{ $labels.x }}` alert template uses. */
export function templateLabels(template: string): string[] {
  return [
    ...[...template.matchAll(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g)].map((m) => m[1] as string),
    ...[...template.matchAll(/\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)/g)].map((m) => m[1] as string),
  ];
}
