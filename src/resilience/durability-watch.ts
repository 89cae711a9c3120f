/**
 * Watches whether the Redis holding the keys can lose them: an eviction
 * policy that can delete key records is refused at start (unless
 * TOLLGATE_ALLOW_EVICTING_REDIS) and reported loudly if it appears later; a
 * Redis that neither persists nor has a replica is warned about. Checked when
 * the connection becomes ready and every `intervalMs` after, so a CONFIG SET
 * on the server is noticed too. Each state is logged when it changes, not on
 * every check.
 */
import type { Logger } from "../observability/logger.js";
import type { DurabilityReport } from "../store/redis-durability.js";

/** Options of DurabilityWatch. */
export interface DurabilityWatchOptions {
  /** Reads the store's durability (inspectDurability on the client). */
  inspect: () => Promise<DurabilityReport>;
  /** TOLLGATE_ALLOW_EVICTING_REDIS: run on an evicting Redis anyway (warned). */
  allowEvicting: boolean;
  log: Logger;
  /** Sets `tollgate_store_durable`: 1 durable, 0 can lose keys, -1 could not check. */
  setDurable: (value: 1 | 0 | -1) => void;
  /** Re-check period, ms (0: only on ready). Default 60 000. */
  intervalMs?: number;
}

/** The refusal to run on an evicting Redis. */
export function evictionRefusal(r: DurabilityReport): string {
  const n = r.nodes.find((x) => x.evictsKeyRecords);
  return (
    `Redis maxmemory-policy is "${n?.maxmemoryPolicy}" on ${n?.node}: it can evict Tollgate's key ` +
    "records (they carry no TTL), so API keys would vanish under memory pressure. Set " +
    "maxmemory-policy noeviction (or a volatile-* policy) on the Redis server, or set " +
    "TOLLGATE_ALLOW_EVICTING_REDIS=true to run anyway"
  );
}

/** Checks the store's durability now and again. */
export class DurabilityWatch {
  private last = "";
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: DurabilityWatchOptions) {}

  /**
   * Checks once and reports. Resolves to the refusal message when the store
   * evicts key records and that is not allowed (the caller refuses to start,
   * or — found later — this has been logged as an error); never rejects.
   */
  async check(): Promise<string | undefined> {
    let r: DurabilityReport;
    try {
      r = await this.o.inspect();
    } catch (err) {
      // Unreachable now: the next ready checks again.
      this.o.log.debug({ err: { message: (err as Error).message } }, "durability check skipped");
      return undefined;
    }
    const refusal = r.evicting && !this.o.allowEvicting ? evictionRefusal(r) : undefined;
    this.o.setDurable(r.unknown ? -1 : r.evicting || r.volatile ? 0 : 1);
    const state = JSON.stringify([r.evicting, r.volatile, r.unknown]);
    if (state !== this.last) {
      this.last = state;
      this.report(r, refusal);
    }
    return refusal;
  }

  /** Re-checks every intervalMs until close(). */
  start(): void {
    const every = this.o.intervalMs ?? 60_000;
    if (every > 0) {
      this.timer ??= setInterval(() => void this.check(), every);
      this.timer.unref();
    }
  }

  /** Stops re-checking. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private report(r: DurabilityReport, refusal: string | undefined): void {
    const { log } = this.o;
    const nodes = r.nodes.map((n) => ({
      node: n.node,
      maxmemoryPolicy: n.maxmemoryPolicy,
      appendonly: n.appendonly,
      save: n.save,
      replicas: n.replicas,
    }));
    if (refusal) log.error({ nodes }, refusal);
    else if (r.evicting) {
      log.warn(
        { nodes },
        "TOLLGATE_ALLOW_EVICTING_REDIS=true: Redis may evict key records under memory pressure; API keys can vanish",
      );
    }
    if (r.volatile) {
      log.warn(
        { nodes },
        'Redis keeps nothing on disk (appendonly no, save "") and has no replica: a Redis restart loses every API key. Turn on AOF (appendonly yes) or RDB snapshots, or add a replica; see the README\'s operations section',
      );
    }
    if (r.unknown) {
      log.warn(
        { nodes: r.nodes.map((n) => ({ node: n.node, error: n.configError })) },
        "could not check Redis durability (CONFIG GET refused, as managed Redis often does): make sure it persists and does not evict keys without a TTL",
      );
    }
    if (!r.evicting && !r.volatile && !r.unknown) log.info({ nodes }, "redis durability checked");
  }
}
