/**
 * Property-based tests of the two parsers that take operator and caller text:
 * the policy file (random text, random YAML, random mutations of the example
 * policy: either a valid policy within its bounds or a PolicyError, nothing
 * else) and path normalisation (idempotent, canonical output, never above the
 * root, total on any string).
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import { normalisePath } from "../../src/policy/path-normaliser.js";
import { type Policy, PolicyError, parsePolicy } from "../../src/policy/policy.js";

const EXAMPLE = readFileSync("examples/policy.yaml", "utf8");
const EXAMPLE_OBJECT = parseYaml(EXAMPLE) as Record<string, unknown>;

/** Parses, returning the policy or the PolicyError; any other throw fails the test. */
function tryParse(text: string): Policy | PolicyError {
  try {
    return parsePolicy(text, "fuzz");
  } catch (err) {
    if (err instanceof PolicyError) return err;
    throw new Error(`parsePolicy threw ${(err as Error)?.name}: ${(err as Error)?.message}`);
  }
}

/** A valid policy's compiled bounds hold. */
function expectWithinBounds(p: Policy): void {
  const limits = [
    ...[...p.tiers.values()].flatMap((t) => t.limits),
    ...p.endpoints.flatMap((e) => e.limits.map((l) => l.limit)),
  ];
  for (const l of limits) {
    expect(Number.isSafeInteger(l.requests) && l.requests >= 0).toBe(true);
    expect(Number.isSafeInteger(l.burst) && l.burst >= 0).toBe(true);
    expect(l.periodMs).toBeGreaterThan(0);
    if (l.kind === "rate")
      expect(l.burst * l.periodMs).toBeLessThanOrEqual(Number.MAX_SAFE_INTEGER);
  }
  for (const e of p.endpoints) {
    expect(Number.isInteger(e.cost) && e.cost >= 1 && e.cost <= 1_000_000).toBe(true);
  }
  expect(p.tiers.has(p.defaultTier)).toBe(true);
}

/** Values a mutation may put anywhere. */
const hostileValue = fc.oneof(
  fc.constantFrom(
    -1,
    0,
    1.5,
    2 ** 53,
    1e308,
    Number.NaN,
    "",
    "0s",
    "-1s",
    "1y",
    "∞",
    "{",
    "/../",
    "/v1/%2f",
    "**/x",
    null,
    true,
    [],
    {},
  ),
  fc.jsonValue({ maxDepth: 2 }),
);

/** Replaces the value at a random path of `obj` with `value` (returns a copy). */
function mutate(obj: unknown, choices: number[], value: unknown): unknown {
  if (choices.length === 0 || obj === null || typeof obj !== "object") return value;
  const copy: Record<string, unknown> | unknown[] = Array.isArray(obj) ? [...obj] : { ...obj };
  const keys = Object.keys(copy);
  if (keys.length === 0) return value;
  const k = keys[(choices[0] as number) % keys.length] as string;
  (copy as Record<string, unknown>)[k] = mutate(
    (copy as Record<string, unknown>)[k],
    choices.slice(1),
    value,
  );
  return copy;
}

describe("policy files", () => {
  it("accepts the example policy", () => {
    const p = tryParse(EXAMPLE);
    expect(p).not.toBeInstanceOf(PolicyError);
  });

  it("answers random text with a policy or a PolicyError, nothing else", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 400 }),
          fc.string({ unit: "binary", maxLength: 400 }),
          fc.jsonValue({ maxDepth: 4 }).map((v) => toYaml(v)),
        ),
        (text) => {
          const r = tryParse(text);
          if (!(r instanceof PolicyError)) expectWithinBounds(r);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("answers random mutations of the example with a policy within bounds or a PolicyError", () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.nat({ max: 50 }), { minLength: 1, maxLength: 6 }), {
          minLength: 1,
          maxLength: 3,
        }),
        fc.array(hostileValue, { minLength: 3, maxLength: 3 }),
        (paths, values) => {
          let obj: unknown = EXAMPLE_OBJECT;
          paths.forEach((p, i) => {
            obj = mutate(obj, p, values[i]);
          });
          const r = tryParse(toYaml(obj));
          if (!(r instanceof PolicyError)) expectWithinBounds(r);
          // An error names a field but never dumps the whole document.
          else expect(r.message.length).toBeLessThan(20_000);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("refuses hostile YAML (aliases bombs, deep nesting, huge documents) quickly", () => {
    const bomb = [
      "a: &a [x, x, x, x, x, x, x, x, x]",
      "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]",
      "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]",
      "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]",
      "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]",
      "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]",
      "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]",
      "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]",
    ].join("\n");
    for (const text of [bomb, `${"[".repeat(5000)}${"]".repeat(5000)}`, "x: 1\n".repeat(50_000)]) {
      const t = Date.now();
      expect(tryParse(text)).toBeInstanceOf(PolicyError);
      expect(Date.now() - t).toBeLessThan(5_000);
    }
  });
});

describe("path normalisation", () => {
  const segment = fc.constantFrom(
    "",
    ".",
    "..",
    "%2e",
    "%2E%2e",
    ".%2e",
    "a",
    "A",
    "%41",
    "%61",
    "v1",
    "V1",
    "~",
    "%7e",
    "%7E",
    "%20",
    "%2f",
    "%2F",
    "%5c",
    "%00",
    "%",
    "%g1",
    "é",
    "%C3%A9",
    "x?y=1",
    "x#f",
    "*",
    "{id}",
    "\\",
    "\t",
  );
  const pathLike = fc
    .array(segment, { maxLength: 12 })
    .map((segs) => `/${segs.join("/")}`)
    .chain((p) => fc.constantFrom(p, `/${p}`, `${p}/`, p.slice(1)));
  const anyPath = fc.oneof(pathLike, fc.string({ maxLength: 60 }), fc.string({ unit: "binary" }));

  it("is idempotent and canonical on every input it accepts", () => {
    fc.assert(
      fc.property(anyPath, (raw) => {
        const n = normalisePath(raw);
        if (!n.ok) {
          expect(typeof n.error).toBe("string");
          return;
        }
        const again = normalisePath(n.path);
        expect(again).toEqual({ ok: true, path: n.path });
        expect(n.path.startsWith("/")).toBe(true);
        expect(n.path).not.toMatch(/\/\//);
        expect(n.path === "/" || !n.path.endsWith("/")).toBe(true);
        expect(n.path.split("/").some((s) => s === "." || s === "..")).toBe(false);
        expect(n.path).toBe(n.path.toLowerCase());
        expect(n.path).not.toMatch(/[?#\\]/);
      }),
      { numRuns: 2000 },
    );
  });

  it("maps a path and its spelling variants to one normal form", () => {
    const word = fc.stringMatching(/^[a-z0-9]{1,8}$/);
    fc.assert(
      fc.property(fc.array(word, { minLength: 1, maxLength: 6 }), (words) => {
        const canonical = `/${words.join("/")}`;
        const variants = [
          `/${words.join("//")}/`,
          `/${words.map((w) => w.toUpperCase()).join("/")}`,
          `/${words.join("/./")}`,
          `/zz/../${words.join("/")}`,
          `/../../${words.join("/")}?q=1#f`,
          `/${words.map((w) => [...w].map((c) => `%${c.charCodeAt(0).toString(16)}`).join("")).join("/")}`,
        ];
        for (const v of variants) expect(normalisePath(v)).toEqual({ ok: true, path: canonical });
      }),
      { numRuns: 300 },
    );
  });
});
