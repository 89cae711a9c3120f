/**
 * The bounds every RPC connection lives under: how many may be open, how many
 * requests and how many body bytes may be in flight, how large a header list
 * may be, and how long each phase of a connection may take. Defaults suit a
 * sidecar behind Envoy on loopback: Envoy keeps a few long-lived HTTP/2
 * connections with many streams, so nothing here cuts a connection that is
 * busy, and a quiet one is only closed after minutes.
 */
import { readFileSync } from "node:fs";
import type { Settings } from "../config/settings.js";

/** Bounds of the RPC transports (from TOLLGATE_* settings; see docs/security-bounds.md). */
export interface TransportLimits {
  /** Most open connections across both RPC ports (TOLLGATE_MAX_CONNECTIONS, default 1000). */
  maxConnections: number;
  /**
   * How long a connection may take to send its first bytes, a complete
   * HTTP/1.1 request head, or to complete the HTTP/2 (or TLS) handshake, ms
   * (TOLLGATE_HEADER_TIMEOUT_MS, default 10 000).
   */
  headerTimeoutMs: number;
  /** How long a request body may take to arrive after its head, ms (TOLLGATE_BODY_TIMEOUT_MS, default 30 000). */
  bodyTimeoutMs: number;
  /**
   * How long an HTTP/2 connection may go without a request in flight before
   * it gets GOAWAY, ms (TOLLGATE_IDLE_TIMEOUT_MS, default 300 000). HTTP/1.1
   * keep-alive connections get the lesser of this and 5 s.
   */
  idleTimeoutMs: number;
  /** Largest request header list, bytes (TOLLGATE_MAX_HEADER_LIST_BYTES, default 65 536). */
  maxHeaderListBytes: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS of each connection (TOLLGATE_MAX_STREAMS_PER_CONNECTION, default 100). */
  maxStreamsPerConnection: number;
  /** Requests in flight at once across every RPC connection (TOLLGATE_MAX_INFLIGHT_REQUESTS, default 500). */
  maxInflightRequests: number;
  /**
   * Request body bytes held at once across every in-flight request
   * (TOLLGATE_MAX_INFLIGHT_BODY_BYTES, default 32 MiB; never below the
   * largest message, so one maximal request always fits).
   */
  maxInflightBodyBytes: number;
}

/** The transport bounds of the settings. */
export function transportLimitsFromSettings(s: Settings): TransportLimits {
  return {
    maxConnections: s.maxConnections,
    headerTimeoutMs: s.headerTimeoutMs,
    bodyTimeoutMs: s.bodyTimeoutMs,
    idleTimeoutMs: s.idleTimeoutMs,
    maxHeaderListBytes: s.maxHeaderListBytes,
    maxStreamsPerConnection: s.maxStreamsPerConnection,
    maxInflightRequests: s.maxInflightRequests,
    maxInflightBodyBytes: Math.max(s.maxInflightBodyBytes, s.maxMessageBytes),
  };
}

/**
 * Descriptors kept out of the RPC connection cap: the admin port's own cap
 * (64), Redis connections, the listeners, files and Node's own handles.
 */
export const RESERVED_DESCRIPTORS = 128;

/** The cap actually applied, and why it differs from the setting (if it does). */
export interface ConnectionCap {
  max: number;
  /** The process's open-file limit when it lowered the cap. */
  loweredForFileLimit?: number;
}

/**
 * The connection cap the process can honour: `configured`, lowered so that
 * RPC connections can never take the descriptors the admin port and Redis
 * need (one descriptor per connection). Reads the soft RLIMIT_NOFILE from
 * /proc/self/limits (Node raises it to the hard limit at startup); where that
 * is unreadable (not Linux), `configured` stands.
 */
export function connectionCap(configured: number, limitsFile = "/proc/self/limits"): ConnectionCap {
  let text: string;
  try {
    text = readFileSync(limitsFile, "utf8");
  } catch {
    return { max: configured };
  }
  const soft = /^Max open files\s+(\d+)/m.exec(text)?.[1];
  if (soft === undefined) return { max: configured };
  const fileLimit = Number(soft);
  const allowed = Math.max(16, fileLimit - RESERVED_DESCRIPTORS);
  return allowed < configured
    ? { max: allowed, loweredForFileLimit: fileLimit }
    : { max: configured };
}
