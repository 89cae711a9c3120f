/**
 * Before binding, every listening address is tried once, so that all taken
 * ports are reported in one message, each with its setting — not one per
 * start attempt. The probe closes each socket at once; the real bind that
 * follows still reports a port taken in between.
 */
import cluster from "node:cluster";
import { createServer } from "node:net";

/** A listening address and the setting that names it. */
export interface NamedAddress {
  setting: string;
  /** host:port; port 0 is skipped (any free port). */
  addr: string;
}

/** Why each address cannot be listened on, as `SETTING (addr): EADDRINUSE`; empty if all can. */
export async function unavailableAddresses(addrs: readonly NamedAddress[]): Promise<string[]> {
  // A cluster worker's ports are its primary's (`serve --workers N` probes
  // them before forking): probed here they would be found taken by itself.
  if (cluster.isWorker) return [];
  const results = await Promise.all(
    addrs.map(async ({ setting, addr }) => {
      const i = addr.lastIndexOf(":");
      const port = Number(addr.slice(i + 1));
      const host = addr.slice(0, i).replace(/^\[(.*)\]$/, "$1");
      if (port === 0) return undefined;
      const code = await tryListen(host, port);
      return code ? `${setting} (${addr}): ${explain(code)}` : undefined;
    }),
  );
  return results.filter((r): r is string => r !== undefined);
}

function explain(code: string): string {
  if (code === "EADDRINUSE") return "the port is taken (EADDRINUSE)";
  if (code === "EACCES") return "not allowed to listen there (EACCES)";
  if (code === "EADDRNOTAVAIL") return "no such local address (EADDRNOTAVAIL)";
  return code;
}

/** Listens and closes at once; resolves to the error code, or undefined when it could listen. */
function tryListen(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "error"));
    s.listen({ host: host === "" ? undefined : host, port, exclusive: true }, () =>
      s.close(() => resolve(undefined)),
    );
  });
}
