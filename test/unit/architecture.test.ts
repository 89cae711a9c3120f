/**
 * The layers run one way. Reads every import of `src/**\/*.ts` (not the
 * generated `src/gen`) with the TypeScript parser and checks, folder by folder:
 *
 *  (a) nothing in `src/store` imports a domain folder's (or any higher
 *      layer's) runtime code: the store implements interfaces the domain owns
 *      and may name them only with type-only imports (`import type`,
 *      `export type`), which the build erases;
 *  (b) every runtime import goes down the layers below, and the folder graph
 *      of runtime imports has no cycle.
 *
 * Type-only imports are not dependencies at run time (they are how the store
 * names the domain's interfaces), so (b) counts runtime imports only. Note
 * that `import { type A } from "x"` is *not* type-only under
 * verbatimModuleSyntax: it still loads "x", and counts.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const SRC = resolve(import.meta.dirname, "../../src");

/**
 * The layers, top to bottom. A runtime import may go from a folder to a folder
 * of a lower layer, or to a peer of its own layer as long as no cycle forms.
 * `main` is src/main.ts, the composition root.
 */
const LAYERS: readonly (readonly string[])[] = [
  ["cli"],
  ["main", "inject"],
  // The object graph and the backend switch: composition, wiring every layer below.
  ["app"],
  // The web console serves on the HTTP port beside the transport's routes.
  ["transport", "console"],
  ["services"],
  // The domain: the decision engine over keys, limits and events; policy is
  // the model they all read.
  ["decision", "events", "keys", "ratelimit", "policy"],
  ["resilience"],
  ["store"],
  ["config", "observability", "subjects"],
  ["util", "gen"],
];

const DOMAIN = new Set(["decision", "events", "keys", "ratelimit", "policy"]);

/** One import of one file. */
interface Import {
  from: string;
  to: string;
  fromFolder: string;
  toFolder: string;
  typeOnly: boolean;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return relative(SRC, p) === "gen" ? [] : sourceFiles(p);
    return p.endsWith(".ts") ? [p] : [];
  });
}

/** The folder of a path under src: its first segment, or the file's name for a top-level file. */
function folderOf(path: string): string {
  const parts = relative(SRC, path).split("/");
  return parts.length === 1 ? (parts[0] ?? "").replace(/\.[jt]s$/, "") : (parts[0] ?? "");
}

function importsOf(file: string): Import[] {
  const sf = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
  const out: Import[] = [];
  const add = (spec: string, typeOnly: boolean) => {
    if (!spec.startsWith(".")) return;
    const target = resolve(dirname(file), spec);
    out.push({
      from: relative(SRC, file),
      to: relative(SRC, target),
      fromFolder: folderOf(file),
      toFolder: folderOf(target),
      typeOnly,
    });
  };
  const visit = (n: ts.Node): void => {
    if (ts.isImportDeclaration(n) && ts.isStringLiteral(n.moduleSpecifier)) {
      add(n.moduleSpecifier.text, n.importClause?.isTypeOnly === true);
    } else if (
      ts.isExportDeclaration(n) &&
      n.moduleSpecifier &&
      ts.isStringLiteral(n.moduleSpecifier)
    ) {
      add(n.moduleSpecifier.text, n.isTypeOnly);
    } else if (
      ts.isCallExpression(n) &&
      n.expression.kind === ts.SyntaxKind.ImportKeyword &&
      n.arguments[0] &&
      ts.isStringLiteral(n.arguments[0])
    ) {
      add(n.arguments[0].text, false);
    } else if (
      ts.isImportTypeNode(n) &&
      ts.isLiteralTypeNode(n.argument) &&
      ts.isStringLiteral(n.argument.literal)
    ) {
      add(n.argument.literal.text, true);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

const IMPORTS = sourceFiles(SRC).flatMap(importsOf);
const crossFolder = IMPORTS.filter((i) => i.fromFolder !== i.toFolder);
const runtime = crossFolder.filter((i) => !i.typeOnly);
const rank = (folder: string) => LAYERS.findIndex((l) => l.includes(folder));
const show = (i: Import) => `${i.from} → ${i.to} (${i.fromFolder} → ${i.toFolder})`;

/** A cycle in the folder graph of `edges`, as the folders around it, or undefined. */
function findCycle(edges: readonly Import[]): string[] | undefined {
  const next = new Map<string, Set<string>>();
  for (const e of edges)
    next.set(e.fromFolder, (next.get(e.fromFolder) ?? new Set()).add(e.toFolder));
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const dfs = (f: string): string[] | undefined => {
    state.set(f, "open");
    path.push(f);
    for (const t of next.get(f) ?? []) {
      if (state.get(t) === "open") return [...path.slice(path.indexOf(t)), t];
      if (!state.has(t)) {
        const c = dfs(t);
        if (c) return c;
      }
    }
    path.pop();
    state.set(f, "done");
    return undefined;
  };
  for (const f of next.keys()) {
    if (!state.has(f)) {
      const c = dfs(f);
      if (c) return c;
    }
  }
  return undefined;
}

describe("architecture: layers run one way", () => {
  it("reads the imports (the parser sees them)", () => {
    expect(IMPORTS.length).toBeGreaterThan(300);
    expect(crossFolder.some((i) => i.fromFolder === "store" && i.typeOnly)).toBe(true);
  });

  it("every src folder has a layer", () => {
    const folders = new Set(IMPORTS.flatMap((i) => [i.fromFolder, i.toFolder]));
    expect([...folders].filter((f) => rank(f) < 0)).toEqual([]);
  });

  it("(a) nothing in src/store imports a domain folder's runtime code (type-only imports allowed)", () => {
    const offending = runtime.filter(
      (i) =>
        i.fromFolder === "store" && (DOMAIN.has(i.toFolder) || rank(i.toFolder) <= rank("store")),
    );
    expect(offending.map(show)).toEqual([]);
  });

  it("(b) every runtime import goes down the layers (cli/transport → services → domain → store/util)", () => {
    const upward = runtime.filter((i) => rank(i.toFolder) < rank(i.fromFolder));
    expect(upward.map(show)).toEqual([]);
  });

  it("(b) the folder graph of runtime imports has no cycle", () => {
    const cycle = findCycle(runtime);
    const edgesOf = (c: string[]) =>
      c.slice(1).map((to, k) => {
        const e = runtime.find((i) => i.fromFolder === c[k] && i.toFolder === to);
        return e ? show(e) : `${c[k]} → ${to}`;
      });
    expect(cycle ? edgesOf(cycle) : []).toEqual([]);
  });

  it("Redis key names are built in store/redis-keys.ts only", () => {
    // A key name is a `${prefix}…:{hash tag}` template; anywhere else it would drift.
    const builders = sourceFiles(SRC).filter(
      (f) =>
        relative(SRC, f) !== "store/redis-keys.ts" &&
        /`\$\{prefix\}[a-z-]+:\{/.test(readFileSync(f, "utf8")),
    );
    expect(builders.map((f) => relative(SRC, f))).toEqual([]);
  });

  it("Lua scripts run through store/script-runner.ts only (no defineCommand, no stray EVAL)", () => {
    const callers = sourceFiles(SRC).filter(
      (f) =>
        relative(SRC, f) !== "store/script-runner.ts" &&
        /\.(?:defineCommand|evalsha|eval)\(/.test(readFileSync(f, "utf8")),
    );
    expect(callers.map((f) => relative(SRC, f))).toEqual([]);
  });

  it("the cycle check finds a cycle when there is one", () => {
    const edge = (fromFolder: string, toFolder: string): Import => ({
      from: `${fromFolder}/a.ts`,
      to: `${toFolder}/b.ts`,
      fromFolder,
      toFolder,
      typeOnly: false,
    });
    expect(findCycle([edge("policy", "events"), edge("events", "policy")])).toEqual([
      "policy",
      "events",
      "policy",
    ]);
    expect(findCycle([edge("events", "policy"), edge("keys", "policy")])).toBeUndefined();
  });
});
