import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KeyService } from "../gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../gen/tollgate/v1/tollgate_service_pb.js";
import { CLIENT_FLAGS, checkFlags, type FlagTable } from "./flags.js";

/** Where the CLI talks to, and with which management token. */
export interface ClientOptions {
  server?: string;
  tokenFile?: string;
}

/** The management token: --token-file, else $TOLLGATE_MANAGEMENT_TOKEN_FILE, else $TOLLGATE_MANAGEMENT_TOKEN. */
export function readToken(file: string | undefined): string {
  const f = file ?? process.env.TOLLGATE_MANAGEMENT_TOKEN_FILE;
  if (f) return readFileSync(f, "utf8").trim();
  return process.env.TOLLGATE_MANAGEMENT_TOKEN ?? "";
}

/**
 * Where the server is: --server, else $TOLLGATE_SERVER, else the address the
 * server's own settings name ($TOLLGATE_ADDR, a wildcard bind reached on
 * loopback; https when TLS is configured), else the default 127.0.0.1:50051.
 * One rule for the CLI, the examples and the clients.
 */
export function serverUrl(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (flag) return flag;
  if (env.TOLLGATE_SERVER) return env.TOLLGATE_SERVER;
  const addr = env.TOLLGATE_ADDR;
  if (!addr) return "http://127.0.0.1:50051";
  const i = addr.lastIndexOf(":");
  let host = addr.slice(0, i);
  if (host === "0.0.0.0" || host === "") host = "127.0.0.1";
  if (host === "[::]") host = "[::1]";
  const scheme = env.TOLLGATE_TLS_CERT_FILE ? "https" : "http";
  return `${scheme}://${host}:${addr.slice(i + 1)}`;
}

/** gRPC clients of a running server, sending the management token when there is one. */
export function createClients(o: ClientOptions) {
  const token = readToken(o.tokenFile);
  const baseUrl = serverUrl(o.server);
  const transport = createGrpcTransport({
    baseUrl,
    interceptors: [
      (next) => (req) => {
        if (token) req.header.set("authorization", `Bearer ${token}`);
        return next(req);
      },
    ],
  });
  return {
    baseUrl,
    keys: createClient(KeyService, transport),
    tollgate: createClient(TollgateService, transport),
  };
}

/** Clients for a command's parsed `--server` and `--token-file` options. */
export function clientsFromOptions(o: Record<string, unknown>) {
  return createClients({
    ...(typeof o.server === "string" && { server: o.server }),
    ...(typeof o["token-file"] === "string" && { tokenFile: o["token-file"] }),
  });
}

/**
 * What the user can do about a failed call: set the token, start the server,
 * look at Redis, or use the main port instead of the admin port.
 */
export async function rpcErrorHint(err: unknown, baseUrl: string): Promise<string> {
  const ce = ConnectError.from(err);
  if (ce.code === Code.Unauthenticated && /management token/.test(ce.rawMessage)) {
    return " (set TOLLGATE_MANAGEMENT_TOKEN or TOLLGATE_MANAGEMENT_TOKEN_FILE, or pass --token-file FILE)";
  }
  // An HTTP/1.1-only server (the admin port) answers the HTTP/2 preface with a protocol error.
  if (ce.code !== Code.Unavailable && ce.code !== Code.Internal) return "";
  // Tollgate itself answered: its store is what is down.
  if (/store is/.test(ce.rawMessage)) {
    return " (tollgate answered: its Redis is unreachable or failing; see the server's log and /readyz)";
  }
  try {
    const r = await fetch(new URL("/readyz", baseUrl), { signal: AbortSignal.timeout(1000) });
    const text = await r.text();
    if (/^(ok|not ready)/.test(text)) {
      return ` (${baseUrl} is tollgate's admin port: point the CLI at the main port, TOLLGATE_ADDR, e.g. http://127.0.0.1:50051)`;
    }
  } catch {
    // Nothing answers HTTP there either.
  }
  if (ce.code === Code.Internal) return "";
  return ` (is tollgate serving at ${baseUrl}? set --server or TOLLGATE_SERVER)`;
}

/** Prints a failed call as `<label>: <Code>: <message>` with a hint of what to do; returns exit code 1. */
export async function reportRpcError(
  label: string,
  err: unknown,
  baseUrl: string,
): Promise<number> {
  const ce = ConnectError.from(err);
  const hint = await rpcErrorHint(err, baseUrl);
  process.stderr.write(`${label}: ${Code[ce.code]}: ${ce.rawMessage}${hint}\n`);
  return 1;
}

/** A client command's parsed arguments. */
export interface CommandLine {
  o: Record<string, string | boolean | undefined>;
  positionals: string[];
  /** A string option's value, or "". */
  str(name: string): string;
}

/**
 * Parses a client command: the common `--server`, `--token-file`, `--json` and
 * `--help`, plus string options — `extra` for the whole command, or by
 * subcommand (`{ list: ["limit"], lift: ["key"] }`), each subcommand then
 * refusing the others' flags. An unknown flag is refused with a suggestion
 * (flags.ts). A usage mistake, `--help` or a missing first argument prints
 * (errors to stderr) and returns the exit code instead; `subHelp` is a
 * subcommand's own `--help`. Names in `booleans` are flags without a value
 * (`--follow`) wherever `extra` lists them.
 */
export function parseCommandLine(
  label: string,
  argv: string[],
  extra: readonly string[] | Readonly<Record<string, readonly string[]>>,
  help: string,
  subHelp: Readonly<Record<string, string>> = {},
  booleans: readonly string[] = [],
): CommandLine | number {
  const table = (names: readonly string[]): FlagTable => ({
    ...Object.fromEntries(
      names.map((k) => [
        k,
        booleans.includes(k)
          ? ({ type: "boolean", help: "" } as const)
          : ({ type: "string", arg: "V", help: "" } as const),
      ]),
    ),
    ...CLIENT_FLAGS,
  });
  const bySub = Array.isArray(extra) ? undefined : (extra as Record<string, readonly string[]>);
  const all = table(bySub ? Object.values(bySub).flat() : (extra as readonly string[]));
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    const sub = parseArgs({ args: argv, options: all, strict: false, allowPositionals: true })
      .positionals[0];
    const own = bySub && sub !== undefined && bySub[sub] ? table(bySub[sub]) : all;
    const siblings = bySub
      ? Object.fromEntries(Object.entries(bySub).map(([s, f]) => [s, table(f)]))
      : {};
    const name = label.replace(/^tollgate /, "");
    checkFlags(
      argv,
      own,
      bySub && sub !== undefined && bySub[sub] ? `${name} ${sub}` : name,
      siblings,
    );
    parsed = parseArgs({ args: argv, allowPositionals: true, options: own }) as typeof parsed;
  } catch (err) {
    process.stderr.write(`${label}: ${(err as Error).message}\n`);
    return 2;
  }
  const { values: o, positionals } = parsed;
  if (o.help || positionals[0] === undefined) {
    const sub = positionals[0];
    process.stdout.write(sub !== undefined && subHelp[sub] ? (subHelp[sub] as string) : help);
    return o.help ? 0 : 2;
  }
  const str = (k: string) => (typeof o[k] === "string" ? (o[k] as string) : "");
  return { o, positionals, str };
}
