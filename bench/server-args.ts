/**
 * Command line of the bench's own servers: `--port N` (0: any free port) and
 * optional `--response FILE` / `--redis URL`. A server prints one JSON line
 * `{"port":N}` on stdout once it listens, which the runner waits for.
 */
import { parseArgs } from "node:util";

/** Parsed arguments of a bench server. */
export interface ServerArgs {
  port: number;
  response: string;
  redis: string;
}

/** Parses process.argv. */
export function serverArgs(): ServerArgs {
  const { values } = parseArgs({
    options: {
      port: { type: "string", default: "0" },
      response: { type: "string", default: "" },
      redis: { type: "string", default: "" },
    },
  });
  return { port: Number(values.port), response: values.response, redis: values.redis };
}

/** Tells the runner the bound port. */
export function announce(port: number): void {
  process.stdout.write(`${JSON.stringify({ port })}\n`);
}

/** Exits on SIGTERM / SIGINT after `close` (bounded by 2 s). */
export function exitOnSignal(close: () => void): void {
  const stop = () => {
    setTimeout(() => process.exit(0), 2_000).unref();
    close();
    process.exit(0);
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}
