/**
 * Loading the policy file: a valid file compiles; an invalid one is refused
 * with a message naming the file and the path of every offending field, so
 * a bad reload is refused loudly.
 */
import { describe, expect, it } from "vitest";
import {
  DEFAULT_POLICY_YAML,
  matchEndpoint,
  type Policy,
  PolicyError,
  parsePolicy,
} from "../../src/policy/policy.js";

const BASE = `version: 1
default_tier: free
tiers:
  free: {}
  pro: { description: paid }
`;
const load = (text: string): Policy => parsePolicy(text, "policy.yaml");
const refusal = (text: string): string => {
  try {
    load(text);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    return (err as Error).message;
  }
  throw new Error("the policy was accepted");
};

describe("a valid policy", () => {
  it("loads the built-in default policy: tiers free and pro, no endpoints", () => {
    const p = parsePolicy(DEFAULT_POLICY_YAML, "built-in");
    expect(p.defaultTier).toBe("free");
    expect([...p.tiers.keys()]).toEqual(["free", "pro"]);
    expect(p.endpoints).toEqual([]);
    expect(p.defaults.cost).toBe(1);
    expect(p.source).toBe("built-in");
  });

  it("compiles endpoints: normalised patterns, {param} as one segment, methods, scopes", () => {
    const p = load(`${BASE}endpoints:
  - name: get-order
    method: GET
    path: "/V1//Orders/{id}/"
    scopes: [orders:read]
    cost: 3
    fail_mode: open
  - { name: any-admin, method: [POST, PUT], path: "/admin/**" }
  - { name: all, path: / }
`);
    const [order, admin, all] = p.endpoints;
    expect(order).toMatchObject({
      name: "get-order",
      pattern: "/v1/orders/*",
      segments: ["v1", "orders", "*"],
      scopes: ["orders:read"],
      cost: 3,
      failMode: "open",
    });
    expect([...(order?.methods ?? [])]).toEqual(["GET"]);
    expect([...(admin?.methods ?? [])]).toEqual(["POST", "PUT"]);
    expect(all?.methods).toBeUndefined();
    expect(all?.cost).toBe(1);
    expect(matchEndpoint(p, "get", "/v1/orders/17")?.name).toBe("get-order");
    expect(matchEndpoint(p, "GET", "/v1/orders/17/items")).toBeUndefined();
    expect(matchEndpoint(p, "PUT", "/admin/a/b/c")?.name).toBe("any-admin");
    expect(matchEndpoint(p, "GET", "/")?.name).toBe("all");
  });
});

describe("an invalid policy", () => {
  it("names the file and the field path of an endpoint's bad path", () => {
    const msg = refusal(`${BASE}endpoints:
  - { name: ok, path: /v1/ok }
  - { name: bad, path: v1/orders }
`);
    expect(msg).toMatch(/^policy\.yaml: /);
    expect(msg).toContain("endpoints.1.path: must start with '/'");
    expect(refusal(`${BASE}endpoints:\n  - { name: e, path: "/v1/%2F" }\n`)).toContain(
      "endpoints.0.path: path has an encoded",
    );
    expect(refusal(`${BASE}endpoints:\n  - { name: e, path: "/a/**/b" }\n`)).toContain(
      "endpoints.0.path: '**' is only allowed as the last segment",
    );
  });

  it("refuses duplicate endpoint names, naming the second one", () => {
    const msg = refusal(`${BASE}endpoints:
  - { name: orders, path: /v1/orders }
  - { name: users, path: /v1/users }
  - { name: orders, path: /v2/orders }
`);
    expect(msg).toContain('endpoints.2.name: duplicate endpoint "orders"');
    expect(msg).not.toContain("endpoints.0.name");
  });

  it("refuses unknown fields at every level (a typo must not disable a rule)", () => {
    expect(refusal(`${BASE}endpionts: []\n`)).toMatch(/\(root\): Unrecognized key.*endpionts/);
    expect(refusal(`${BASE}endpoints:\n  - { name: e, path: /x, scope: [orders:read] }\n`)).toMatch(
      /endpoints\.0: Unrecognized key.*scope/,
    );
    expect(refusal(`${BASE.replace("free: {}", "free: { limitz: [] }")}`)).toMatch(
      /tiers\.free: Unrecognized key.*limitz/,
    );
  });

  it("requires default_tier to be one of the tiers", () => {
    expect(refusal(BASE.replace("default_tier: free", "default_tier: gold"))).toContain(
      'default_tier: "gold" is not a tier',
    );
  });

  it("names every problem at once", () => {
    const msg = refusal(`version: 1
default_tier: gold
tiers: { free: {} }
endpoints:
  - { name: "-bad", path: /x, method: get }
`);
    expect(msg).toContain("default_tier:");
    expect(msg).toContain("endpoints.0.name:");
    expect(msg).toContain("endpoints.0.method:");
  });

  it("refuses a wrong version, no tiers, and text that is not YAML", () => {
    expect(refusal(BASE.replace("version: 1", "version: 2"))).toContain("version:");
    expect(refusal("version: 1\ndefault_tier: free\ntiers: {}\n")).toContain(
      "tiers: at least one tier is required",
    );
    expect(refusal("version: 1\n  bad: [indent")).toMatch(/^policy\.yaml: not valid YAML/);
    expect(refusal("")).toMatch(/^policy\.yaml: \(root\)/);
  });

  it("refuses an alias bomb instead of expanding it", () => {
    const bomb = [
      "a: &a [x, x, x, x, x, x, x, x, x, x]",
      ...Array.from(
        { length: 12 },
        (_, i) =>
          `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10)
            .fill(`*${String.fromCharCode(97 + i)}`)
            .join(", ")}]`,
      ),
    ].join("\n");
    expect(refusal(bomb)).toMatch(/not valid YAML/);
  });
});
