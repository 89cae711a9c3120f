/**
 * Where the client talks to and with which management token, resolved exactly
 * like the `tollgate` CLI (src/cli/client.ts): explicit options first, then the
 * environment, then the defaults.
 */
import { readFileSync } from "node:fs";

/** The address `tollgate serve` listens on by default (its main port). */
export const DEFAULT_SERVER = "http://127.0.0.1:50051";

/** The inputs of {@link resolveSettings}. */
export interface SettingsInput {
  /** Explicit server URL; wins over `TOLLGATE_SERVER`. */
  server?: string | undefined;
  /** Explicit management token; wins over every file and variable. */
  managementToken?: string | undefined;
  /** Explicit token file (contents trimmed); wins over the variables. */
  managementTokenFile?: string | undefined;
  /** The environment to read; `process.env` unless given. */
  env?: Record<string, string | undefined> | undefined;
}

/** The resolved server and token. */
export interface Settings {
  /** An http(s) URL. */
  server: string;
  /** The management token, or "" for none (dev mode: management open on loopback). */
  managementToken: string;
}

/**
 * Resolves the server (`server`, else `TOLLGATE_SERVER`, else
 * {@link DEFAULT_SERVER}) and the management token (`managementToken`, else the
 * trimmed contents of `managementTokenFile`, else of
 * `TOLLGATE_MANAGEMENT_TOKEN_FILE`, else `TOLLGATE_MANAGEMENT_TOKEN`, else "").
 * Throws if the server is not an http(s) URL; the error never contains the token.
 */
export function resolveSettings(input: SettingsInput = {}): Settings {
  const env = input.env ?? process.env;
  const server = input.server || env.TOLLGATE_SERVER || DEFAULT_SERVER;
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new TypeError(`tollgate: server must be an http(s) URL, got ${JSON.stringify(server)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(`tollgate: server must be an http(s) URL, got ${JSON.stringify(server)}`);
  }
  let managementToken = input.managementToken;
  if (managementToken === undefined) {
    const file = input.managementTokenFile || env.TOLLGATE_MANAGEMENT_TOKEN_FILE;
    managementToken = file
      ? readFileSync(file, "utf8").trim()
      : (env.TOLLGATE_MANAGEMENT_TOKEN ?? "");
  }
  return { server: server.replace(/\/+$/, ""), managementToken };
}
