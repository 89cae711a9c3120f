import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import type { Alert, AlertFilter, EventFilter, Page, SecurityEvent } from "../events/event.js";
import type {
  AppendOptions,
  AppendResult,
  EventRetention,
  EventStore,
} from "../events/event-store.js";
import { matchesAlert, matchesEvent } from "./event-filters.js";
import { DEFAULT_EVENT_MAX_BYTES, LIST_SCAN_LIMIT } from "./event-store-limits.js";
import { SCRIPTS } from "./lua-scripts.js";
import type { RedisClient } from "./redis-client.js";
import { eventKeyNames } from "./redis-keys.js";
import { EVENT_DUPLICATE } from "./script-replies.js";
import { runScript } from "./script-runner.js";

/**
 * Number of stream shards. Fixed (not a setting): an event's shard is derived
 * from its id, so changing the count would split idempotency and listings.
 */
export const EVENT_SHARDS = 8;

/** The shard of an event id. */
export function shardOf(id: string): number {
  return crc32(id) % EVENT_SHARDS;
}

/**
 * What an idempotency marker holds for an id: 128 bits of its SHA-256
 * (base64url), so a marker costs the same whatever the id's length (≤ 128 bytes).
 */
export function idDigest(id: string): string {
  return createHash("sha256").update(id).digest("base64url").slice(0, 22);
}

/**
 * Events and alerts in Redis Streams, Cluster-safe.
 *
 * Layout: events go to one of EVENT_SHARDS streams `ev:{evN}` chosen by a hash
 * of the event id, so writes spread over the cluster's slots (one stream per
 * subject or kind would make one hot slot). The shard's idempotency markers
 * (one sorted set `eid:{evN}` of id digests) and its counts `evb:{evN}`
 * live in the same slot: `record-event-3.lua` checks and marks the id, appends,
 * and trims the shard oldest first while it holds more than maxEvents /
 * EVENT_SHARDS entries, more than maxBytes / EVENT_SHARDS bytes, or entries
 * older than the retention — one atomic step, so a repeated id is stored
 * exactly once and the shard never exceeds its bounds after a call. A shard
 * keeps no more markers than marked entries; Tollgate's own events (generated ids)
 * get none. Bytes are counted as each entry's JSON plus 64, plus 128 for an
 * entry with a marker: measured, Redis's memory for a shard is then within
 * about 10 % of its count. Every key expires after the retention when idle. Listing merges
 * the shards newest first by entry id (the recording time). Alerts are one
 * capped stream `alerts:{alerts}` (low volume, bounded size per alert).
 */
export class RedisEventStore implements EventStore {
  private readonly names: ReturnType<typeof eventKeyNames>;
  private readonly perShard: number;
  private readonly bytesPerShard: number;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
    private readonly retention: EventRetention,
  ) {
    this.names = eventKeyNames(prefix);
    this.perShard = Math.max(1, Math.ceil(retention.maxEvents / EVENT_SHARDS));
    this.bytesPerShard = Math.max(
      1,
      Math.floor((retention.maxBytes ?? DEFAULT_EVENT_MAX_BYTES) / EVENT_SHARDS),
    );
  }

  async append(events: readonly SecurityEvent[], options?: AppendOptions): Promise<AppendResult> {
    const idempotent = options?.idempotent !== false;
    // Issued together: ioredis auto-pipelining sends them in one write per node.
    const ids = await Promise.all(
      events.map((e) => {
        const n = shardOf(e.id);
        const { recordedAt: _, ...stored } = e;
        return runScript<string>(
          this.redis,
          SCRIPTS.recordEvent,
          [this.names.marks(n), this.names.shard(n), this.names.bytes(n)],
          [
            this.retention.maxAgeMs,
            this.perShard,
            this.bytesPerShard,
            idempotent ? idDigest(e.id) : "",
            JSON.stringify(stored),
          ],
        );
      }),
    );
    const r: AppendResult = { accepted: [], duplicates: [] };
    events.forEach((e, i) => {
      // Within one batch a repeated id is stored once too (the script saw it first).
      (ids[i] === EVENT_DUPLICATE ? r.duplicates : r.accepted).push(e.id);
    });
    return r;
  }

  async list(filter: EventFilter, limit: number, cursor?: string): Promise<Page<SecurityEvent>> {
    const keys = Array.from({ length: EVENT_SHARDS }, (_, n) => this.names.shard(n));
    return this.merge(keys, filter.from, filter.to, limit, cursor, (json, at) => {
      const e = { ...(JSON.parse(json) as SecurityEvent), recordedAt: at };
      return matchesEvent(e, filter) ? e : undefined;
    });
  }

  async appendAlert(alert: Alert): Promise<void> {
    await runScript(
      this.redis,
      SCRIPTS.appendTrimmed,
      [this.names.alerts()],
      [this.retention.maxAgeMs, this.retention.maxAlerts, JSON.stringify(alert)],
    );
  }

  async listAlerts(filter: AlertFilter, limit: number, cursor?: string): Promise<Page<Alert>> {
    return this.merge([this.names.alerts()], filter.from, filter.to, limit, cursor, (json) => {
      const a = JSON.parse(json) as Alert;
      return matchesAlert(a, filter) ? a : undefined;
    });
  }

  /**
   * Reads `keys` newest first, merged by entry id (ties: the higher stream index
   * first, since shards can hold equal ids), keeping what `decode` returns, until
   * `limit` records, the streams' ends, or LIST_SCAN_LIMIT entries examined. The
   * cursor `<id>.<stream index>` is the last entry examined; the next page
   * starts right after it in that order.
   */
  private async merge<T>(
    keys: string[],
    from: number | undefined,
    to: number | undefined,
    limit: number,
    cursor: string | undefined,
    decode: (json: string, recordedAt: number) => T | undefined,
  ): Promise<Page<T>> {
    const [cid, cshardText] = cursor === undefined ? [] : cursor.split(".");
    const cshard = Number(cshardText ?? keys.length);
    const endFor = (i: number) => {
      const top = to === undefined ? "+" : `(${to}-0`;
      if (cid === undefined || (to !== undefined && compareIds(cid, `${to}-0`) >= 0)) return top;
      return i < cshard ? cid : `(${cid}`;
    };
    const start = from === undefined ? "-" : `${from}-0`;
    const batch = Math.min(200, Math.max(limit, 10));
    const heads = keys.map((key, i) => ({
      key,
      i,
      buf: [] as [string, string[]][],
      end: endFor(i),
      done: false,
    }));
    const refill = async (h: (typeof heads)[number]) => {
      const got = (await this.redis.xrevrange(h.key, h.end, start, "COUNT", batch)) as [
        string,
        string[],
      ][];
      h.buf = got;
      h.done = got.length < batch;
      const last = got[got.length - 1];
      if (last) h.end = `(${last[0]}`;
    };
    await Promise.all(heads.map(refill));
    const out: T[] = [];
    let examined = 0;
    for (;;) {
      let best: (typeof heads)[number] | undefined;
      for (const h of heads) {
        const top = h.buf[0];
        if (!top) continue;
        const c = best ? compareIds(top[0], (best.buf[0] as [string, string[]])[0]) : 1;
        if (c > 0 || (c === 0 && best && h.i > best.i)) best = h;
      }
      if (!best) return { items: out };
      const [id, fields] = best.buf.shift() as [string, string[]];
      if (best.buf.length === 0 && !best.done) await refill(best);
      examined++;
      const at = fields.indexOf("e");
      const json = at >= 0 ? fields[at + 1] : undefined;
      const v = json === undefined ? undefined : decode(json, Number(id.split("-")[0]));
      if (v !== undefined) out.push(v);
      if (!heads.some((h) => h.buf.length > 0)) return { items: out };
      if (out.length >= limit || examined >= LIST_SCAN_LIMIT) {
        return { items: out, next: `${id}.${best.i}` };
      }
    }
  }
}

/** Compares stream ids `ms-seq` numerically. */
export function compareIds(a: string, b: string): number {
  const [am = "0", as = "0"] = a.split("-");
  const [bm = "0", bs = "0"] = b.split("-");
  return Number(am) - Number(bm) || Number(as) - Number(bs);
}
