/**
 * The shipped examples stay true: the example policy loads, and the example
 * Envoy config points at clusters, policy endpoints and rate-limit domains that
 * exist. (Envoy itself is not available here to load the config.)
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { loadPolicyFile } from "../../src/policy/policy.js";

/** Every value under `key` anywhere in a parsed YAML tree. */
function collect(node: unknown, key: string, out: unknown[] = []): unknown[] {
  if (Array.isArray(node)) for (const n of node) collect(n, key, out);
  else if (node && typeof node === "object") {
    for (const [k, v] of Object.entries(node)) {
      if (k === key) out.push(v);
      collect(v, key, out);
    }
  }
  return out;
}

describe("examples", () => {
  it("examples/policy.yaml is a valid policy with Envoy rules for domain edge", async () => {
    const p = await loadPolicyFile("examples/policy.yaml");
    expect(p.endpoints.map((e) => e.name)).toContain("list-orders");
    expect([...p.envoyDomains.keys()]).toEqual(["edge"]);
  });

  it("examples/envoy/envoy.yaml references only clusters, endpoints and domains that exist", async () => {
    const envoy = parse(readFileSync("examples/envoy/envoy.yaml", "utf8"));
    const policy = await loadPolicyFile("examples/policy.yaml");
    const clusters = (envoy.static_resources.clusters as { name: string }[]).map((c) => c.name);
    const referenced = [
      ...collect(envoy, "cluster"),
      ...collect(envoy, "cluster_name"),
    ] as string[];
    expect(referenced.length).toBeGreaterThan(0);
    for (const c of referenced) expect(clusters).toContain(c);
    for (const ext of collect(envoy, "context_extensions") as Record<string, string>[]) {
      if (ext.endpoint) expect(policy.endpoints.map((e) => e.name)).toContain(ext.endpoint);
    }
    for (const domain of collect(envoy, "domain") as string[])
      expect(policy.envoyDomains.has(domain)).toBe(true);
    const tollgate = envoy.static_resources.clusters.find(
      (c: { name: string }) => c.name === "tollgate",
    );
    expect(JSON.stringify(tollgate)).toContain("http2_protocol_options");
  });
});
