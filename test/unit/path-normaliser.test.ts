/**
 * Path normalisation runs before endpoint matching: every spelling of one path
 * must reach the same endpoint rule, and spellings that could smuggle a
 * separator are refused outright.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { normalisePath } from "../../src/policy/path-normaliser.js";

const path = (raw: string) => {
  const n = normalisePath(raw);
  if (!n.ok) throw new Error(`refused ${JSON.stringify(raw)}: ${n.error}`);
  return n.path;
};
const refused = (raw: string) => {
  const n = normalisePath(raw);
  return n.ok ? undefined : n.error;
};

describe("normalisePath", () => {
  it.each([
    ["//v1/x", "/v1/x"],
    ["/v1//x", "/v1/x"],
    ["/v1///x//", "/v1/x"],
    ["/V1/x", "/v1/x"],
    ["/V1/ORDERS", "/v1/orders"],
    ["/v1/x/", "/v1/x"],
    ["/v1/./x", "/v1/x"],
    ["/v1/%2e/x", "/v1/x"],
    ["/v1/../x", "/x"],
    ["/v1/%2e%2e/x", "/x"],
    ["/v1/%2E%2E/x", "/x"],
    ["/v1/.%2e/x", "/x"],
    ["/../../../x", "/x"],
    ["/v1/orders/../../../etc/passwd", "/etc/passwd"],
    ["/v1/x?y=/../admin", "/v1/x"],
    ["/v1/x#frag/../..", "/v1/x"],
    ["/v1/%78", "/v1/x"],
    ["/v1/%7E~%41", "/v1/~~a"],
    ["/", "/"],
    ["//", "/"],
    ["/..", "/"],
    ["/?q", "/"],
  ])("normalises %j to %j", (raw, expected) => {
    expect(path(raw)).toBe(expected);
  });

  it("refuses an encoded '/', '\\' or NUL, in either case", () => {
    for (const raw of ["/v1%2Fx", "/v1%2fx", "/v1/%2F../admin", "/v1%5Cx", "/v1%5cx", "/v1%00x"]) {
      expect(refused(raw), raw).toMatch(/encoded/);
    }
  });

  it("refuses malformed escapes, raw backslashes, control characters and relative paths", () => {
    expect(refused("/v1/%")).toMatch(/malformed/);
    expect(refused("/v1/%4")).toMatch(/malformed/);
    expect(refused("/v1/%zz")).toMatch(/malformed/);
    expect(refused("/v1\\x")).toMatch(/backslash/);
    expect(refused("/v1/\nx")).toMatch(/control/);
    expect(refused("/v1/\u007fx")).toMatch(/control/);
    expect(refused("v1/x")).toMatch(/start with/);
    expect(refused("")).toMatch(/start with/);
    expect(refused("?/v1")).toMatch(/start with/);
  });

  it("keeps escapes of reserved characters escaped, one canonical spelling for both cases", () => {
    expect(path("/a%2A")).toBe(path("/a%2a"));
    expect(path("/a%20b")).toBe(path("/A%20B"));
    expect(path("/a%2A")).not.toBe(path("/a*"));
    expect(path("/a%20b")).toMatch(/^\/a%20b$/i);
  });

  it("is idempotent and canonical over many random inputs", () => {
    const piece = fc.constantFrom(
      "/",
      "//",
      ".",
      "..",
      "%2e",
      "%2E",
      "%2f",
      "%41",
      "%7e",
      "%20",
      "%2a",
      "%",
      "a",
      "B",
      "v1",
      "Orders",
      "~",
      "-",
      "_",
      "?",
      "#",
      "*",
      "é",
      "İ",
    );
    const raw = fc.oneof(
      fc.array(piece, { maxLength: 24 }).map((a) => `/${a.join("")}`),
      fc.string({ maxLength: 40 }).map((s) => `/${s}`),
      fc.string({ unit: "grapheme", maxLength: 20 }),
    );
    fc.assert(
      fc.property(raw, (r) => {
        const once = normalisePath(r);
        if (!once.ok) return;
        const p = once.path;
        expect(normalisePath(p)).toEqual({ ok: true, path: p });
        expect(p.startsWith("/")).toBe(true);
        expect(p).not.toMatch(/\/\//);
        if (p !== "/") expect(p.endsWith("/")).toBe(false);
        expect(p.split("/").slice(1)).not.toContain(".");
        expect(p.split("/").slice(1)).not.toContain("..");
        expect(p).toBe(p.toLowerCase());
        expect(p).not.toMatch(/[?#\\]/);
      }),
      { numRuns: 3000 },
    );
  });
  it("answers a path it leaves unchanged without the character loop, as the loop would", () => {
    // "/." + p takes the full rule (a "." segment is never already normal) and
    // must read the same as p does on the shortcut, for normal and near-normal paths.
    const seg = fc.stringMatching(/^[a-zA-Z0-9\-._~%]{0,6}$/);
    const raw = fc.array(seg, { minLength: 1, maxLength: 6 }).map((a) => `/${a.join("/")}`);
    fc.assert(
      fc.property(raw, (r) => {
        expect(normalisePath(r)).toEqual(normalisePath(`/.${r}`));
      }),
      { numRuns: 5000 },
    );
    for (const p of ["/", "/v1/items", "/a/b-c_d~e/f.json", "/.well-known"]) {
      expect(normalisePath(p)).toEqual(normalisePath(`/.${p}`));
    }
  });
});
