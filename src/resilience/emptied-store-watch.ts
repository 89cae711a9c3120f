/**
 * Notices, within seconds, that the store lost its data — a Redis restarted
 * without persistence, a FLUSHALL, eviction — instead of learning it from
 * customers whose keys all answer UNKNOWN_KEY. The store keeps an epoch (a
 * random id written once, no expiry, beside the pepper fingerprint); each
 * replica remembers the one it first saw. If it later finds another (or none,
 * and writes a new one), the data it vouched for is gone: that is reported
 * once per loss, and the state stays visible (metric, /readyz body) until the
 * process restarts, even though a new epoch is in place.
 */
import { randomBytes } from "node:crypto";
import type { StoreMarker } from "../keys/store-marker.js";
import type { Logger } from "../observability/logger.js";
import type { Clock } from "../util/clock.js";

/** Options of EmptiedStoreWatch. */
export interface EmptiedStoreWatchOptions {
  marker: StoreMarker;
  clock: Clock;
  log: Logger;
  /** Called once per loss with when it was noticed (epoch ms). */
  onEmptied: (at: number) => void;
  /** Check period, ms (0: only when asked). Default 5 000. */
  intervalMs?: number;
}

/** The message logged (as an error) when the store is found emptied. */
export const EMPTIED_MESSAGE =
  "the store was emptied: its epoch marker changed (Redis restarted without persistence, was flushed, or evicted keys); every API key now answers UNKNOWN_KEY until restored with `tollgate keys import <backup>`";

/** Watches the store's epoch. */
export class EmptiedStoreWatch {
  private known: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  /** When the last loss was noticed, if any since this process started. */
  emptiedAt: number | undefined;

  constructor(private readonly o: EmptiedStoreWatchOptions) {}

  /** Reads the epoch now (joins a read under way). Never rejects: an unreachable store is checked next time. */
  check(): Promise<void> {
    this.checking ??= this.run().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  /** Checks every intervalMs until close(). */
  start(): void {
    const every = this.o.intervalMs ?? 5_000;
    if (every > 0) {
      this.timer ??= setInterval(() => void this.check(), every);
      this.timer.unref();
    }
  }

  /** Stops checking. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async run(): Promise<void> {
    let epoch: string;
    try {
      epoch = await this.o.marker.epoch(randomBytes(8).toString("hex"));
    } catch (err) {
      this.o.log.debug({ err: { message: (err as Error).message } }, "store epoch check skipped");
      return;
    }
    if (this.known === undefined) {
      this.known = epoch;
      return;
    }
    if (epoch === this.known) return;
    this.known = epoch;
    const at = this.o.clock.now();
    this.emptiedAt = at;
    this.o.log.error({ emptiedAt: new Date(at).toISOString() }, EMPTIED_MESSAGE);
    this.o.onEmptied(at);
  }
}
