/**
 * Runs the pepper check (pepper-fingerprint.ts) whenever the store connection
 * becomes ready: at startup, after a Redis that was down at startup appears,
 * and after every reconnect (a Redis restarted empty gets the fingerprint
 * again). A check that fails for infrastructure reasons is retried while the
 * connection is up; a mismatch is reported once and the watch stops.
 */
import type { Logger } from "../observability/logger.js";
import { settlesWithin } from "../util/deadline.js";
import {
  type CheckPepperOptions,
  checkPepper,
  type PepperCheck,
  pepperMismatchMessage,
  shownFingerprint,
} from "./pepper-fingerprint.js";

/** Options of PepperWatch. */
export interface PepperWatchOptions extends Omit<CheckPepperOptions, "acceptNew"> {
  /**
   * TOLLGATE_ACCEPT_NEW_PEPPER: the first check of this process replaces a
   * different stored fingerprint (later ones compare strictly).
   */
  acceptNew: boolean;
  /** True while the connection takes commands; a failed check is retried only then. */
  connected: () => boolean;
  log: Logger;
  /** Called once, with the refusal, when the store's keys were made with another pepper. */
  onMismatch: (message: string) => void;
}

/** Longest pause between retries of a failed check, ms. */
const MAX_RETRY_MS = 2_000;

/** Checks the pepper against the store, again on each reconnect. */
export class PepperWatch {
  private running: Promise<PepperCheck | undefined> | undefined;
  private acceptNew: boolean;
  private stopped = false;
  private retry: { timer: NodeJS.Timeout; wake: () => void } | undefined;

  constructor(private readonly o: PepperWatchOptions) {
    this.acceptNew = o.acceptNew;
  }

  /**
   * Checks now (or joins the check under way). Resolves to the outcome, or
   * undefined if the connection went away first (the next ready checks again)
   * or the watch was closed. Never rejects.
   */
  verify(): Promise<PepperCheck | undefined> {
    this.running ??= this.run().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /**
   * The startup check: waits up to `waitMs` for the check under way (or a new
   * one) and resolves to the refusal message if it found a mismatch. A check
   * that takes longer goes on; its mismatch then reaches `onMismatch`.
   */
  async refusalAtStartup(waitMs: number): Promise<string | undefined> {
    const check = this.verify();
    if (!(await settlesWithin(check, waitMs))) return undefined;
    const r = await check;
    return r?.outcome === "mismatch"
      ? pepperMismatchMessage(r.stored, this.o.fingerprint)
      : undefined;
  }

  /** Stops checking (shutdown, or after a mismatch). */
  close(): void {
    this.stopped = true;
    if (this.retry) {
      clearTimeout(this.retry.timer);
      this.retry.wake();
    }
  }

  private async run(): Promise<PepperCheck | undefined> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        const r = await checkPepper({ ...this.o, acceptNew: this.acceptNew });
        if (this.stopped) return undefined;
        this.report(r);
        return r;
      } catch (err) {
        if (attempt === 0) {
          this.o.log.warn(
            { err: { message: (err as Error).message } },
            "could not check the pepper fingerprint yet: retrying while Redis is connected",
          );
        }
        if (!this.o.connected()) return undefined;
        await this.pause(Math.min(MAX_RETRY_MS, 100 * 2 ** attempt));
      }
    }
    return undefined;
  }

  private report(r: PepperCheck): void {
    const { log } = this.o;
    const fingerprint = shownFingerprint(this.o.fingerprint);
    const acceptNew = this.acceptNew;
    // The setting is for one deliberate change, at the first check only.
    this.acceptNew = false;
    switch (r.outcome) {
      case "matched":
        if (acceptNew) {
          log.warn(
            { fingerprint },
            "TOLLGATE_ACCEPT_NEW_PEPPER=true but the pepper is the one recorded: nothing replaced; remove the setting",
          );
        } else log.debug({ fingerprint }, "pepper fingerprint matches the store");
        return;
      case "recorded":
        if (r.adopted) {
          log.warn(
            { fingerprint },
            "pepper fingerprint recorded for keys created before fingerprints were kept; if those keys now answer UNKNOWN_KEY, the pepper changed before this start",
          );
        } else log.info({ fingerprint }, "pepper fingerprint recorded in the store");
        return;
      case "replaced":
        log.warn(
          { fingerprint, previous: shownFingerprint(r.previous) },
          "TOLLGATE_ACCEPT_NEW_PEPPER=true: the stored pepper fingerprint was replaced; keys created under the previous pepper answer UNKNOWN_KEY until re-issued. Remove the setting once every replica runs the new pepper",
        );
        return;
      case "mismatch": {
        const message = pepperMismatchMessage(r.stored, this.o.fingerprint);
        log.error(message);
        this.close();
        this.o.onMismatch(message);
        return;
      }
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.retry = undefined;
        resolve();
      }, ms);
      timer.unref();
      this.retry = { timer, wake: resolve };
    });
  }
}
