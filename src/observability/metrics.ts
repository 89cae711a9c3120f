/**
 * Every metric Tollgate exports, declared in one place. Names follow
 * `tollgate_<subsystem>_<name>_<unit>`; labels are bounded enumerations (rpc,
 * code, decision, reason, tier, result) — never a key, key id, IP, owner or path.
 */

import cluster from "node:cluster";
import { AggregatorRegistry, Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { MemoryUsage } from "../util/memory-usage.js";
import { BatchedHistogram } from "./batched-histogram.js";

/**
 * The bounded in-memory structures reported by the `tollgate_memory_*` metrics
 * (the `structure` label; see docs/security-bounds.md for each one's bounds).
 */
export type MemoryStructure =
  | "found_keys"
  | "unknown_keys"
  | "block_cache"
  | "ratelimit"
  | "insurance"
  | "allotments"
  | "events"
  | "alerts"
  | "detection"
  | "usage";

/** The metrics of one process, on their own registry. */
export class Metrics {
  readonly registry = new Registry();

  /** Latency of handled RPCs, seconds. */
  readonly rpcDuration = new BatchedHistogram({
    name: "tollgate_rpc_duration_seconds",
    help: "Time to handle an RPC, by method and result code.",
    labelNames: ["rpc", "code"] as const,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });

  /** Decisions taken. */
  readonly decisions = new Counter({
    name: "tollgate_decisions_total",
    help: "Decisions taken, by RPC, decision (allow/deny), reason and tier.",
    labelNames: ["rpc", "decision", "reason", "tier"] as const,
    registers: [this.registry],
    // Counted in plain numbers per label set (countDecision), added here on each read.
    collect: () => this.flushDecisions(),
  });

  /** Key lookups by cache outcome. */
  readonly cacheLookups = new Counter({
    name: "tollgate_key_cache_lookups_total",
    help: "Key lookups, by result (hit, miss).",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });

  /** Entries evicted from the key cache for space. */
  readonly cacheEvictions = new Counter({
    name: "tollgate_key_cache_evictions_total",
    help: "Key cache entries evicted because the cache was full.",
    registers: [this.registry],
  });

  /** Cache invalidations applied. */
  readonly invalidations = new Counter({
    name: "tollgate_key_cache_invalidations_total",
    help: "Cache invalidation messages applied, by origin (local, remote).",
    labelNames: ["origin"] as const,
    registers: [this.registry],
  });

  /** Key management actions. */
  readonly keyActions = new Counter({
    name: "tollgate_key_actions_total",
    help: "Key management actions, by action (create, update, revoke, rotate; import counts keys created or replaced by ImportKeys, export counts exports started; override counts owner limit overrides set or removed, a key's counting as update).",
    labelNames: ["action"] as const,
    registers: [this.registry],
  });

  /** Foreign keys moved to the HMAC digest on first use. */
  readonly foreignKeysMigrated = new Counter({
    name: "tollgate_key_foreign_migrated_total",
    help: "Keys imported by a foreign SHA-256 digest and moved to Tollgate's HMAC digest on their first successful use.",
    registers: [this.registry],
  });

  /** Policy reloads by result. */
  readonly policyReloads = new Counter({
    name: "tollgate_policy_reloads_total",
    help: "Policy reloads, by result (success, failure). A failure keeps the previous policy.",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });

  /** This build (always 1; the labels carry the information). */
  readonly buildInfo = new Gauge({
    name: "tollgate_build_info",
    // Across `serve --workers N`: first, not the sum.
    aggregator: "first",
    help: "Always 1; labels: the version, git commit and Node version of this build.",
    labelNames: ["version", "commit", "node"] as const,
    registers: [this.registry],
  });

  /** Whether the store can lose keys (tollgate_store_durable). */
  readonly storeDurable = new Gauge({
    name: "tollgate_store_durable",
    // Across `serve --workers N`: min, not the sum.
    aggregator: "min",
    help: "1: Redis persists (AOF, RDB or a replica) and cannot evict key records; 0: it can lose keys (no persistence and no replica, or an evicting policy allowed by TOLLGATE_ALLOW_EVICTING_REDIS); -1: could not check (CONFIG GET refused).",
    registers: [this.registry],
  });

  /** 1 once this process noticed the store lost its data (until restart). */
  readonly storeEmptied = new Gauge({
    name: "tollgate_store_emptied",
    // Across `serve --workers N`: max, not the sum.
    aggregator: "max",
    help: "1 once this process noticed the store was emptied (its epoch marker changed: a Redis restart without persistence, a flush, eviction), until the process restarts; 0 otherwise.",
    registers: [this.registry],
  });

  /** Failed management authentications (token guessing shows here). */
  readonly managementAuthFailures = new Counter({
    name: "tollgate_management_auth_failures_total",
    help: "Management calls refused for a missing or wrong token, or (dev mode) a foreign Host/Origin, by reason (missing, invalid, foreign_caller).",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });

  /** Shadow-mode limits skipped for a request lacking their dimension (never an error). */
  readonly shadowSkipped = new Counter({
    name: "tollgate_ratelimit_shadow_skipped_total",
    help: "Requests a shadow-mode limit was skipped for because they lack its dimension (e.g. no client IP for by: ip), by rule (limit name).",
    labelNames: ["rule"] as const,
    registers: [this.registry],
  });

  /** Shadow-mode limits that would have denied. */
  readonly shadowDenials = new Counter({
    name: "tollgate_ratelimit_shadow_denials_total",
    help: "Requests a shadow-mode limit would have denied, by rule (limit name).",
    labelNames: ["rule"] as const,
    registers: [this.registry],
  });

  /** Blocks placed for repeated violations. */
  readonly blocksPlaced = new Counter({
    name: "tollgate_ratelimit_blocks_total",
    help: "Subjects blocked for repeated violations, by subject kind (key, ip, subject).",
    labelNames: ["by"] as const,
    registers: [this.registry],
  });

  /** Store call latency by operation. */
  readonly storeDuration = new BatchedHistogram({
    name: "tollgate_redis_command_duration_seconds",
    help: "Time of successful store (Redis) operations, by operation.",
    labelNames: ["op"] as const,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
    registers: [this.registry],
  });

  /** Store call failures. */
  readonly storeErrors = new Counter({
    name: "tollgate_redis_errors_total",
    help: "Failed store (Redis) operations, by operation and kind (timeout, connection, oom, reply, breaker_open; internal: a script error, WRONGTYPE or bug, not counted by the breaker).",
    labelNames: ["op", "kind"] as const,
    registers: [this.registry],
  });

  /** Breaker state per connection. */
  readonly breakerState = new Gauge({
    name: "tollgate_breaker_state",
    // Across `serve --workers N`: max, not the sum.
    aggregator: "max",
    help: "Circuit breaker state per connection: 0 closed, 1 half-open, 2 open.",
    labelNames: ["breaker"] as const,
    registers: [this.registry],
  });

  /** Breaker transitions. */
  readonly breakerTransitions = new Counter({
    name: "tollgate_breaker_transitions_total",
    help: "Circuit breaker state changes, by connection and new state.",
    labelNames: ["breaker", "to"] as const,
    registers: [this.registry],
  });

  /** Decisions taken locally (fail open) while the store was unreachable. */
  readonly localDecisions = new Counter({
    name: "tollgate_local_decisions_total",
    help: "Decisions taken locally because the store was unreachable (fail open), by RPC and decision.",
    labelNames: ["rpc", "decision"] as const,
    registers: [this.registry],
  });

  /** Requests failed because the store was unreachable and the fail mode is closed. */
  readonly failClosed = new Counter({
    name: "tollgate_fail_closed_total",
    help: "Calls answered UNAVAILABLE because the store was unreachable and the fail mode is closed, by RPC.",
    labelNames: ["rpc"] as const,
    registers: [this.registry],
  });

  /** Security events stored. */
  readonly eventsRecorded = new Counter({
    name: "tollgate_events_recorded_total",
    help: "Security events stored, by source (api: RecordEvent, internal: Tollgate's own).",
    labelNames: ["source"] as const,
    registers: [this.registry],
  });

  /** Events and request observations not stored. */
  readonly eventsDropped = new Counter({
    name: "tollgate_events_dropped_total",
    help: "Internal events or request observations dropped, by reason (buffer_full, store_error, shutdown: not written by the shutdown deadline).",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });

  /** Events whose id was already stored. */
  readonly eventsDuplicate = new Counter({
    name: "tollgate_events_duplicates_total",
    help: "Events not stored again because their idempotency id was seen within the retention.",
    registers: [this.registry],
  });

  /** Alerts raised. */
  readonly alerts = new Counter({
    name: "tollgate_alerts_total",
    help: "Alerts raised by detection rules, by rule and severity.",
    labelNames: ["rule", "severity"] as const,
    registers: [this.registry],
  });

  /** Detection batches that failed (store unreachable). */
  readonly detectionErrors = new Counter({
    name: "tollgate_detection_errors_total",
    help: "Detection batches that could not be evaluated (store failure).",
    registers: [this.registry],
  });

  /** Webhook delivery attempts. */
  readonly webhookAttempts = new Counter({
    name: "tollgate_webhook_attempts_total",
    help: "Webhook delivery attempts, by webhook (name in the policy) and result (success, failure).",
    labelNames: ["webhook", "result"] as const,
    registers: [this.registry],
  });

  /** Alerts a webhook never delivered. */
  readonly webhookDropped = new Counter({
    name: "tollgate_webhook_dropped_total",
    help: "Alerts dropped by a webhook, by webhook and reason (queue_full, exhausted, shutdown).",
    labelNames: ["webhook", "reason"] as const,
    registers: [this.registry],
  });

  /** Store calls Redis refused for lack of memory (maxmemory reached). */
  readonly storeOom = new Counter({
    name: "tollgate_redis_oom_total",
    help: 'Store (Redis) operations refused with OOM (maxmemory reached), by operation. Also counted in tollgate_redis_errors_total{kind="oom"}.',
    labelNames: ["op"] as const,
    registers: [this.registry],
  });

  /** Tollgate's own repeated events folded into an aggregate record. */
  readonly eventsAggregated = new Counter({
    name: "tollgate_events_aggregated_total",
    help: "Tollgate's own repeated events (auth_failure, permission_denied, rate_limited, blocked) counted into an aggregate record instead of a record of their own, by type.",
    labelNames: ["type"] as const,
    registers: [this.registry],
  });

  /** Subjects a detection rule stopped tracking because it tracked its maximum. */
  readonly detectionForgotten = new Counter({
    name: "tollgate_detection_subjects_forgotten_total",
    help: "Subjects whose detection window a rule dropped because the rule tracked TOLLGATE_DETECTION_MAX_SUBJECTS subjects (least recently seen first), by rule.",
    labelNames: ["rule"] as const,
    registers: [this.registry],
  });

  // Transport bounds (src/transport/*-guard.ts). `port` is main or http.

  /** Open connections on the RPC ports. */
  readonly transportConnections = new Gauge({
    name: "tollgate_transport_connections",
    help: "Open connections on the RPC ports, by port (main, http); at most TOLLGATE_MAX_CONNECTIONS together.",
    labelNames: ["port"] as const,
    registers: [this.registry],
  });

  /** Requests in flight and their body bytes held, across the RPC ports; set by a collect callback. */
  readonly transportInflightRequests: Gauge;
  readonly transportInflightBodyBytes: Gauge;
  private requestBudget: () => { inflight: number; bodyBytes: number } = () => ({
    inflight: 0,
    bodyBytes: 0,
  });

  /** Connections closed at once because TOLLGATE_MAX_CONNECTIONS were open. */
  readonly transportConnectionsRefused = new Counter({
    name: "tollgate_transport_connections_refused_total",
    help: "Connections closed on arrival because TOLLGATE_MAX_CONNECTIONS connections were open, by port.",
    labelNames: ["port"] as const,
    registers: [this.registry],
  });

  /** Requests refused because an in-flight bound was reached. */
  readonly transportRequestsRefused = new Counter({
    name: "tollgate_transport_requests_refused_total",
    help: "Requests refused before their handler ran, by port and reason (inflight: TOLLGATE_MAX_INFLIGHT_REQUESTS; body_budget: TOLLGATE_MAX_INFLIGHT_BODY_BYTES).",
    labelNames: ["port", "reason"] as const,
    registers: [this.registry],
  });

  /** Requests refused for a header list over TOLLGATE_MAX_HEADER_LIST_BYTES. */
  readonly transportHeaderListRefusals = new Counter({
    name: "tollgate_transport_header_list_refusals_total",
    help: "Requests refused for a header list over TOLLGATE_MAX_HEADER_LIST_BYTES, by port and protocol (http1: 431; http2: streams Tollgate's own check reset, i.e. those sent before the client acknowledged SETTINGS).",
    labelNames: ["port", "protocol"] as const,
    registers: [this.registry],
  });

  /** HTTP/2 connections cut off for resetting streams rapidly (CVE-2023-44487). */
  readonly transportRapidResetCutoffs = new Counter({
    name: "tollgate_transport_rapid_reset_cutoffs_total",
    help: "HTTP/2 connections sent GOAWAY ENHANCE_YOUR_CALM and closed for resetting streams before their answer (rapid reset), by port.",
    labelNames: ["port"] as const,
    registers: [this.registry],
  });

  /** Connections and requests ended by a transport timeout. */
  readonly transportTimeouts = new Counter({
    name: "tollgate_transport_timeouts_total",
    help: "Connections or requests ended by a timeout, by port and kind (header, body, idle, ping: an HTTP/2 connection that stopped answering PING).",
    labelNames: ["port", "kind"] as const,
    registers: [this.registry],
  });

  /** Current key cache size; set by a collect callback. */
  readonly cacheSize: Gauge;

  /** Whether the process is ready (1) or not (0). */
  readonly ready = new Gauge({
    name: "tollgate_ready",
    // Across `serve --workers N`: min, not the sum.
    aggregator: "min",
    help: "1 while Tollgate accepts traffic, 0 while starting or draining.",
    registers: [this.registry],
  });

  // --- Memory bounds: sizes of the bounded in-memory structures, read on scrape.
  private readonly memorySources = new Map<MemoryStructure, () => MemoryUsage>();
  private readonly memoryEvictionsSeen = new Map<MemoryStructure, number>();

  /** Entries held by each bounded in-memory structure. */
  readonly memoryEntries = new Gauge({
    name: "tollgate_memory_entries",
    help: "Entries held by a bounded in-memory structure (caches; the embedded store's maps and rings), by structure.",
    labelNames: ["structure"] as const,
    registers: [this.registry],
    collect: () => {
      for (const [s, read] of this.memorySources)
        this.memoryEntries.set({ structure: s }, read().entries);
    },
  });

  /** Estimated heap bytes held by each bounded in-memory structure. */
  readonly memoryBytes = new Gauge({
    name: "tollgate_memory_bytes",
    help: "Estimated heap bytes held by a bounded in-memory structure, by structure.",
    labelNames: ["structure"] as const,
    registers: [this.registry],
    collect: () => {
      for (const [s, read] of this.memorySources)
        this.memoryBytes.set({ structure: s }, read().bytes);
    },
  });

  /** Entries evicted for space (not expiry) from each bounded in-memory structure. */
  readonly memoryEvictions = new Counter({
    name: "tollgate_memory_evictions_total",
    help: "Entries a bounded in-memory structure evicted because it reached its entry or byte bound, by structure.",
    labelNames: ["structure"] as const,
    registers: [this.registry],
    collect: () => {
      for (const [s, read] of this.memorySources) {
        const total = read().evictions;
        const delta = total - (this.memoryEvictionsSeen.get(s) ?? 0);
        if (delta > 0) this.memoryEvictions.inc({ structure: s }, delta);
        this.memoryEvictionsSeen.set(s, total);
      }
    },
  });

  /** Reports `structure`'s size (read on every scrape) in the `tollgate_memory_*` metrics. */
  trackMemory(structure: MemoryStructure, read: () => MemoryUsage): void {
    this.memorySources.set(structure, read);
    this.memoryEntries.set({ structure }, 0);
    this.memoryBytes.set({ structure }, 0);
    this.memoryEvictions.inc({ structure }, 0);
  }

  /**
   * Decisions counted since the last read, per label set. Bounded by the label
   * values: RPCs × allow/deny × reasons × the policy's tiers.
   */
  private readonly pendingDecisions = new Map<
    string,
    { labels: { rpc: string; decision: string; reason: string; tier: string }; n: number }
  >();

  /**
   * Counts one decision. It runs on every decision, and prom-client hashes
   * the label object on every `inc` (even a label child's): here a decision
   * adds 1 to a plain number, and the counter receives the sums when it is
   * read (scrape, worker aggregation), through its `collect`.
   */
  countDecision(labels: { rpc: string; decision: string; reason: string; tier: string }): void {
    const k = `${labels.rpc}\u0000${labels.decision}\u0000${labels.reason}\u0000${labels.tier}`;
    const pending = this.pendingDecisions.get(k);
    if (pending) pending.n++;
    else this.pendingDecisions.set(k, { labels: { ...labels }, n: 1 });
  }

  private flushDecisions(): void {
    for (const p of this.pendingDecisions.values()) {
      if (p.n === 0) continue;
      this.decisions.inc(p.labels, p.n);
      p.n = 0;
    }
  }

  /** Where the in-flight gauges read from (the transports' request budget). */
  observeRequestBudget(read: () => { inflight: number; bodyBytes: number }): void {
    this.requestBudget = read;
  }

  constructor(cacheSize: () => number, options: { processMetrics?: boolean } = {}) {
    const budget = () => this.requestBudget();
    this.transportInflightRequests = new Gauge({
      name: "tollgate_transport_inflight_requests",
      help: "Requests in flight across the RPC ports (at most TOLLGATE_MAX_INFLIGHT_REQUESTS).",
      registers: [this.registry],
      collect() {
        this.set(budget().inflight);
      },
    });
    this.transportInflightBodyBytes = new Gauge({
      name: "tollgate_transport_inflight_body_bytes",
      help: "Request-body bytes held for requests in flight (at most TOLLGATE_MAX_INFLIGHT_BODY_BYTES).",
      registers: [this.registry],
      collect() {
        this.set(budget().bodyBytes);
      },
    });
    this.cacheSize = new Gauge({
      name: "tollgate_key_cache_entries",
      help: "Entries in the key cache.",
      registers: [this.registry],
      collect() {
        this.set(cacheSize());
      },
    });
    if (options.processMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, prefix: "tollgate_" });
    }
    // Both results are exported from the start: a series that first appears at 1 has no
    // increase() in Prometheus, so the first refused reload would raise no alert.
    for (const result of ["success", "failure"]) this.policyReloads.inc({ result }, 0);
    // A worker of `serve --workers N` answers its primary's metric requests
    // (over IPC) with this registry; the primary's /metrics sums the workers.
    if (cluster.isWorker) {
      new AggregatorRegistry();
      AggregatorRegistry.setRegistries([this.registry]);
    }
  }
}
