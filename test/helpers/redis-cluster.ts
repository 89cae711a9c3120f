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

/** Starts three masters (no replicas) and waits until the cluster state is ok. */
export async function startTestCluster(): Promise<TestCluster> {
  const nodes: TestRedis[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      nodes.push(
        await spawnRedis(
          [
            "--cluster-enabled",
            "yes",
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
    const deadline = Date.now() + 15_000;
    for (;;) {
      const { stdout } = await run("redis-cli", ["-p", String(nodes[0]?.port), "cluster", "info"]);
      if (stdout.includes("cluster_state:ok")) break;
      if (Date.now() > deadline) throw new Error(`cluster did not become ok:\n${stdout}`);
      await new Promise((r) => setTimeout(r, 100));
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
