/**
 * What the Redis server Tollgate was pointed at does with its data: whether
 * its eviction policy can delete key records (they carry no TTL, so only
 * `noeviction` and the `volatile-*` policies spare them), and whether anything
 * survives a restart (AOF, RDB snapshots, or a replica). Read with CONFIG GET
 * and INFO replication on every master (all of them on Cluster). Managed
 * Redis often forbids CONFIG: that is reported as "unknown", never thrown.
 */
import { Cluster, type Redis } from "ioredis";
import type { RedisClient } from "./redis-client.js";

/** One server's durability facts; undefined where it would not say. */
export interface NodeDurability {
  /** host:port as the client knows it. */
  node: string;
  maxmemoryPolicy?: string;
  /** True when the policy may evict keys without a TTL (key records). */
  evictsKeyRecords?: boolean;
  appendonly?: boolean;
  /** The `save` schedule; "" means RDB snapshots are off. */
  save?: string;
  /** Connected replicas (INFO replication). */
  replicas?: number;
  /** Why CONFIG GET could not be read (e.g. NOPERM on managed Redis). */
  configError?: string;
}

/** The whole store's durability. */
export interface DurabilityReport {
  nodes: NodeDurability[];
  /** Some master's eviction policy can delete key records. */
  evicting: boolean;
  /** Some master neither persists nor has a replica: a restart loses everything. */
  volatile: boolean;
  /** Some master would not answer CONFIG GET. */
  unknown: boolean;
}

/** Policies that never evict a key without an expiry. */
const SAFE_POLICIES = new Set([
  "noeviction",
  "volatile-lru",
  "volatile-lfu",
  "volatile-random",
  "volatile-ttl",
]);

/** True if `policy` (maxmemory-policy) can delete keys that carry no TTL. */
export function policyEvictsKeyRecords(policy: string): boolean {
  return !SAFE_POLICIES.has(policy.toLowerCase());
}

/** Reads every master's durability facts. Throws only if a server cannot be reached at all. */
export async function inspectDurability(client: RedisClient): Promise<DurabilityReport> {
  const masters: Redis[] = client instanceof Cluster ? client.nodes("master") : [client];
  const nodes = await Promise.all(masters.map(inspectNode));
  return {
    nodes,
    evicting: nodes.some((n) => n.evictsKeyRecords === true),
    volatile: nodes.some(
      (n) =>
        n.configError === undefined &&
        n.appendonly === false &&
        n.save === "" &&
        (n.replicas ?? 0) === 0,
    ),
    unknown: nodes.some((n) => n.configError !== undefined),
  };
}

async function inspectNode(r: Redis): Promise<NodeDurability> {
  const out: NodeDurability = { node: `${r.options.host ?? "?"}:${r.options.port ?? "?"}` };
  try {
    const replication = String(await r.info("replication"));
    const m = /^connected_slaves:(\d+)/m.exec(replication);
    if (m) out.replicas = Number(m[1]);
  } catch {
    // INFO can be renamed away too; replicas stay unknown.
  }
  try {
    out.maxmemoryPolicy = await configValue(r, "maxmemory-policy");
    out.evictsKeyRecords = policyEvictsKeyRecords(out.maxmemoryPolicy);
    out.appendonly = (await configValue(r, "appendonly")) === "yes";
    out.save = (await configValue(r, "save")).trim();
  } catch (err) {
    // Managed Redis (ElastiCache, Memorystore, …) may refuse or rename CONFIG.
    out.configError = (err as Error).message.slice(0, 200);
  }
  return out;
}

async function configValue(r: Redis, name: string): Promise<string> {
  const reply = (await r.config("GET", name)) as unknown as string[];
  const i = reply.indexOf(name);
  if (i < 0 || reply[i + 1] === undefined) throw new Error(`CONFIG GET ${name}: no value`);
  return reply[i + 1] as string;
}
