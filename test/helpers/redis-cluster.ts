/**
 * A real 3-master Redis Cluster for tests: three `redis-server --cluster-enabled yes`
 * processes joined with `redis-cli --cluster create`. Starts in a few seconds.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Cluster } from "ioredis";
import { freePort } from "./free-port.js";
import { spawnRedis, type TestRedis } from "./redis-server.js";

const run = promisify(execFile);

/** A running test cluster. */
export interface TestCluster {
  nodes: TestRedis[];
  /** Startup nodes for ioredis Cluster. */
  startupNodes: { host: string; port: number }[];
  /** A new ioredis Cluster client. */
  client(): Cluster;
  stop(): Promise<void>;
}

/**
 * Starts three masters (no replicas) and waits until every node reports the
 * cluster state ok. Each node's cluster bus port is chosen free and passed as
 * `--cluster-port`: the default (port + 10 000) is taken by other programs at
 * times, and does not exist at all for ports above 55 535, which the OS hands
 * out from its ephemeral range.
 */
export async function startTestCluster(): Promise<TestCluster> {
  const nodes: TestRedis[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const busPort = await freePort();
      nodes.push(
        await spawnRedis(
          [
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            String(busPort),
            "--cluster-config-file",
            `nodes-${port}.conf`,
            "--cluster-node-timeout",
            "2000",
          ],
          port,
        ),
      );
    }
    await run("redis-cli", [
      "--cluster",
      "create",
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      "--cluster-replicas",
      "0",
      "--cluster-yes",
    ]);
    // Every node must agree before a client connects: a node that has not yet
    // seen the slot assignment answers CLUSTERDOWN.
    const deadline = Date.now() + 15_000;
    for (const node of nodes) {
      for (;;) {
        const { stdout } = await run("redis-cli", ["-p", String(node.port), "cluster", "info"]);
        if (stdout.includes("cluster_state:ok")) break;
        if (Date.now() > deadline) throw new Error(`cluster did not become ok:\n${stdout}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (err) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw err;
  }
  const startupNodes = nodes.map((n) => ({ host: "127.0.0.1", port: n.port }));
  return {
    nodes,
    startupNodes,
    client: () =>
      new Cluster(startupNodes, {
        enableAutoPipelining: true,
        redisOptions: { maxRetriesPerRequest: 1 },
      }),
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
}
