/**
 * Envoy global rate limit rules (envoyproxy/ratelimit's YAML), compiled to
 * Tollgate limits, and the descriptor matching of that service: at each level an
 * entry matches a node with the same key and value, else a node with the same
 * key and no value (one bucket per distinct value); a descriptor is limited by
 * the node its last entry reaches, if that node has a rate limit.
 */
import { crc32 } from "node:zlib";
import type { Limit } from "./policy.js";
import type { EnvoyDescriptorFile } from "./policy-schema.js";
import { MAX_BURST_TIMES_PERIOD_MS } from "./policy-schema.js";

const UNIT_MS = {
  second: 1000,
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
  year: 365 * 86_400_000,
} as const;

/** A compiled descriptor node. */
export interface EnvoyNode {
  key: string;
  value?: string;
  /** The limit of this node, unless unlimited or absent. */
  limit?: Limit;
  /** Upstream unit and requests_per_unit, reported back to Envoy as `current_limit`. */
  unit?: EnvoyDescriptorFile["rate_limit"] extends infer R
    ? R extends { unit: infer U }
      ? U
      : never
    : never;
  requestsPerUnit?: number;
  unlimited: boolean;
  children: EnvoyNode[];
}

/** Compiles one domain's descriptors; `path` names the field in errors. */
export function compileEnvoyDomain(
  domain: string,
  nodes: EnvoyDescriptorFile[],
  path: string,
): EnvoyNode[] {
  return nodes.map((n, i) =>
    compileNode(domain, n, `${path}.${i}`, [`${n.key}${n.value ? `_${n.value}` : ""}`]),
  );
}

function compileNode(
  domain: string,
  n: EnvoyDescriptorFile,
  path: string,
  trail: string[],
): EnvoyNode {
  const node: EnvoyNode = {
    key: n.key,
    unlimited: n.unlimited === true,
    children: (n.descriptors ?? []).map((c, i) =>
      compileNode(domain, c, `${path}.descriptors.${i}`, [
        ...trail,
        `${c.key}${c.value ? `_${c.value}` : ""}`,
      ]),
    ),
    ...(n.value !== undefined && { value: n.value }),
  };
  const r = n.rate_limit;
  if (r && !node.unlimited) {
    const name = r.name ?? `${domain}.${trail.join(".")}`;
    const mode = n.shadow_mode ? ("shadow" as const) : ("enforce" as const);
    let limit: Limit;
    if (r.unit === "month") {
      limit = {
        name,
        by: "subject",
        kind: "quota",
        mode,
        requests: r.requests_per_unit,
        periodMs: 30 * 86_400_000,
        burst: r.requests_per_unit,
        window: "month",
        bucketId: "",
      };
    } else {
      const periodMs = UNIT_MS[r.unit];
      if (r.requests_per_unit * periodMs > MAX_BURST_TIMES_PERIOD_MS) {
        throw new Error(
          `${path}.rate_limit.requests_per_unit: ${r.requests_per_unit} per ${r.unit} is too large to count exactly (requests × unit in ms must stay below 2^53)`,
        );
      }
      limit = {
        name,
        by: "subject",
        kind: "rate",
        mode,
        requests: r.requests_per_unit,
        periodMs,
        burst: r.requests_per_unit,
        bucketId: "",
      };
    }
    limit.bucketId = `${crc32(JSON.stringify([domain, trail, limit.kind, limit.requests, limit.periodMs])).toString(36)}`;
    node.limit = limit;
    node.unit = r.unit;
    node.requestsPerUnit = r.requests_per_unit;
  }
  return node;
}

/** One descriptor entry as Envoy sends it. */
export interface DescriptorEntry {
  key: string;
  value: string;
}

/** The node a descriptor reaches, or undefined if the config has no rule for it. */
export function matchDescriptor(
  nodes: readonly EnvoyNode[],
  entries: readonly DescriptorEntry[],
): EnvoyNode | undefined {
  let level = nodes;
  let found: EnvoyNode | undefined;
  for (const e of entries) {
    found =
      level.find((n) => n.key === e.key && n.value === e.value) ??
      level.find((n) => n.key === e.key && n.value === undefined);
    if (!found) return undefined;
    level = found.children;
  }
  return found;
}
