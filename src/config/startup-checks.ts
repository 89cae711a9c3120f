/**
 * The checks across settings that `loadSettings` cannot make one field at a
 * time, run once before anything starts: free ports, TLS pairs, plaintext off
 * this host, a management token off loopback, the pepper's source and length,
 * and what Sentinel and Cluster modes need. Each failure is a StartupError
 * naming the setting (tests match the messages, keep them byte for byte).
 */
import { randomBytes } from "node:crypto";
import { isIP } from "node:net";
import { unavailableAddresses } from "../util/port-probe.js";
import { type NamedToken, readSecretFile, readTokensFile } from "./secret-files.js";
import { listenAddresses, type Settings } from "./settings.js";
import { StartupError } from "./startup-error.js";

/** What the checks resolved: the values the rest of the start uses. */
export interface StartupConfig {
  /** TLS on both RPC ports, or undefined for plaintext. */
  tls: { certFile: string; keyFile: string; clientCaFile: string } | undefined;
  /** Every management token: the single one (name "default") first, then the named ones. Empty: dev mode. */
  managementTokens: NamedToken[];
  /** HMAC pepper of key digests, ≥ 16 bytes (random per process on the embedded store when none is set). */
  pepper: Buffer;
  /** Whether the store is Redis (any mode) rather than the embedded one. */
  usingRedis: boolean;
  /** Warnings to log once the logger exists, in order. */
  warnings: string[];
}

/**
 * Runs every cross-field check, in the order their errors take precedence.
 * @throws StartupError for the first configuration that must not start.
 */
export async function checkStartup(settings: Settings): Promise<StartupConfig> {
  const warnings: string[] = [];
  // Every taken port in one message, each with its setting, before anything starts.
  const taken = await unavailableAddresses(listenAddresses(settings));
  if (taken.length > 0) throw new StartupError(`cannot listen: ${taken.join("; ")}`);
  // Management RPCs are served on the RPC ports only (the admin port has none).
  const rpcLoopbackOnly = [settings.grpcAddr, settings.httpAddr]
    .filter((a) => a !== "")
    .every(isLoopbackAddr);
  const tlsOn = settings.tlsCertFile !== "" || settings.tlsKeyFile !== "";
  if (tlsOn && (settings.tlsCertFile === "" || settings.tlsKeyFile === "")) {
    throw new StartupError("TOLLGATE_TLS_CERT_FILE and TOLLGATE_TLS_KEY_FILE must be set together");
  }
  if (settings.tlsClientCaFile !== "" && !tlsOn) {
    throw new StartupError(
      "TOLLGATE_TLS_CLIENT_CA_FILE needs TOLLGATE_TLS_CERT_FILE and TOLLGATE_TLS_KEY_FILE",
    );
  }
  if (!rpcLoopbackOnly && !tlsOn) {
    if (!settings.allowPlaintext) {
      throw new StartupError(
        "TOLLGATE_TLS_CERT_FILE / TOLLGATE_TLS_KEY_FILE are required when an RPC port is bound to a non-loopback address (or set TOLLGATE_ALLOW_PLAINTEXT=true)",
      );
    }
    warnings.push(
      "an RPC port is reachable off this host without TLS (TOLLGATE_ALLOW_PLAINTEXT=true)",
    );
  }
  const managementTokens = resolveManagementTokens(settings, rpcLoopbackOnly);
  const usingRedis = settings.redisUrl !== "" || settings.redisMode !== "standalone";
  const configuredPepper = settings.pepperFile
    ? Buffer.from(readSecretFile(settings.pepperFile, "TOLLGATE_PEPPER_FILE"))
    : Buffer.from(settings.pepper);
  checkRedisMode(settings);
  const pepper = resolvePepper(configuredPepper, usingRedis, warnings);
  return {
    tls: tlsOn
      ? {
          certFile: settings.tlsCertFile,
          keyFile: settings.tlsKeyFile,
          clientCaFile: settings.tlsClientCaFile,
        }
      : undefined,
    managementTokens,
    pepper,
    usingRedis,
    warnings,
  };
}

/** The single token (from its file or setting) and the named ones; none is allowed on loopback only. */
function resolveManagementTokens(settings: Settings, rpcLoopbackOnly: boolean): NamedToken[] {
  const managementToken = settings.managementTokenFile
    ? readSecretFile(settings.managementTokenFile, "TOLLGATE_MANAGEMENT_TOKEN_FILE")
    : settings.managementToken;
  const namedTokens = settings.managementTokensFile
    ? readTokensFile(settings.managementTokensFile)
    : [];
  if (managementToken === "" && namedTokens.length === 0 && !rpcLoopbackOnly) {
    throw new StartupError(
      "TOLLGATE_MANAGEMENT_TOKEN (or _FILE) is required when any listener is bound to a non-loopback address",
    );
  }
  if (managementToken !== "" && Buffer.byteLength(managementToken) < 16) {
    throw new StartupError("TOLLGATE_MANAGEMENT_TOKEN_FILE: the token must be at least 16 bytes");
  }
  return [
    ...(managementToken ? [{ name: "default", token: managementToken }] : []),
    ...namedTokens,
  ];
}

/** Sentinel and Cluster modes need addresses to start from. */
function checkRedisMode(settings: Settings): void {
  if (settings.redisMode === "sentinel" && settings.redisSentinels === "") {
    throw new StartupError(
      "TOLLGATE_REDIS_SENTINELS is required with TOLLGATE_REDIS_MODE=sentinel",
    );
  }
  if (
    settings.redisMode === "cluster" &&
    settings.redisUrl === "" &&
    settings.redisClusterNodes === ""
  ) {
    throw new StartupError(
      "REDIS_URL or TOLLGATE_REDIS_CLUSTER_NODES is required with TOLLGATE_REDIS_MODE=cluster",
    );
  }
}

/**
 * The pepper to use. Redis needs one every replica shares; the embedded store
 * alone may run on a random one, since its keys die with the process anyway.
 */
function resolvePepper(configured: Buffer, usingRedis: boolean, warnings: string[]): Buffer {
  let pepper = configured;
  if (pepper.length === 0) {
    if (usingRedis) {
      throw new StartupError(
        "TOLLGATE_PEPPER (or _FILE) is required with REDIS_URL: every replica must share it",
      );
    }
    pepper = randomBytes(32);
    warnings.push(
      "no pepper configured: using a random one; keys last as long as this process (embedded store)",
    );
  }
  if (pepper.length < 16)
    throw new StartupError("TOLLGATE_PEPPER_FILE: the pepper must be at least 16 bytes");
  return pepper;
}

/** Whether `host:port` binds to this host only (localhost, 127.0.0.0/8, ::1). */
export function isLoopbackAddr(addr: string): boolean {
  const host = addr.slice(0, addr.lastIndexOf(":")).replace(/^\[(.*)\]$/, "$1");
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  if (isIP(host) === 6) return host === "::1";
  return false;
}
