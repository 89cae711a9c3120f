/** Small loopback network tools for the tests: free ports and a counting TCP proxy. */
import { connect, createServer, type Server, type Socket } from "node:net";

/** A loopback port nothing listens on (bound once, then closed). */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** What the proxy does with connection number `n` (0-based). */
export type ProxyMode = "forward" | "reset" | "blackhole";

/** A TCP proxy on 127.0.0.1 that counts connections and can reset or stall them. */
export interface CountingProxy {
  url: string;
  /** Connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

/**
 * Starts a proxy to `target` (host:port). `mode(n)` decides, per accepted
 * connection, to forward it, reset it at once (the sidecar going away) or hold
 * it open without a byte (a hung sidecar).
 */
export async function startProxy(
  targetPort: number,
  mode: (n: number) => ProxyMode,
): Promise<CountingProxy> {
  let count = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const n = count++;
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => {});
    const m = mode(n);
    if (m === "reset") {
      client.resetAndDestroy();
      return;
    }
    if (m === "blackhole") return;
    const upstream = connect(targetPort, "127.0.0.1");
    sockets.add(upstream);
    upstream.on("close", () => sockets.delete(upstream));
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => count,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
