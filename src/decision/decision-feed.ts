/**
 * The live feed of decisions: what `tollgate decisions tail`, the web console's
 * live view and any other watcher of this replica subscribe to. A line is the
 * access-log line of a decision (never a secret). The feed keeps the last
 * RECENT_LINES lines in a fixed ring, listened to or not, so a watcher can
 * start with the recent past (one small object per decision, overwritten in
 * place: the ring never grows). Each subscriber has a bounded queue, and a
 * subscriber that does not keep up loses the oldest lines (counted), never
 * slows a decision.
 */

/** One decision, as the access log shows it. */
export interface DecisionLine {
  /** Epoch ms. */
  at: number;
  /** The door: Authorize, Check, CheckRateLimit, ShouldRateLimit. */
  rpc: string;
  decisionId: string;
  allowed: boolean;
  reason: string;
  keyId?: string;
  endpoint?: string;
  limit?: string;
  clientIp?: string;
  /** Envoy rate-limit domain (ShouldRateLimit). */
  domain?: string;
  latencyMs: number;
}

/** Which lines a subscriber wants. */
export interface DecisionFilter {
  /** Only this key's decisions. */
  keyId?: string;
  /** Only denials. */
  deniedOnly?: boolean;
}

/** Options of DecisionFeed.subscribe beyond the filter. */
export interface SubscribeOptions {
  /**
   * Queue first the last this-many lines of the ring that pass the filter,
   * oldest first, then every new one (nothing lost or repeated between the
   * two). 0 … RECENT_LINES; default 0.
   */
  backlog?: number;
}

/** A subscription: pull lines with `next`, stop with `close`. */
export interface DecisionSubscription {
  /** The next line; resolves undefined once closed. */
  next(): Promise<DecisionLine | undefined>;
  /** Lines dropped because this subscriber fell behind. */
  readonly dropped: number;
  /** Lines waiting to be read now (at most SUBSCRIBER_QUEUE). */
  readonly queued: number;
  close(): void;
}

/** Most subscribers at once (each holds a queue). */
export const MAX_SUBSCRIBERS = 64;
/** Lines a subscriber may have waiting; older ones are dropped beyond it. */
export const SUBSCRIBER_QUEUE = 1000;
/** Lines the ring of recent decisions holds (the most a backlog can ask for). */
export const RECENT_LINES = 1000;

class Subscriber implements DecisionSubscription {
  private readonly queue: DecisionLine[] = [];
  private waiting: ((l: DecisionLine | undefined) => void) | undefined;
  private closed = false;
  dropped = 0;

  constructor(
    private readonly filter: DecisionFilter,
    private readonly onClose: (s: Subscriber) => void,
  ) {}

  /** True if the filter passes `line`. */
  wants(line: DecisionLine): boolean {
    if (this.filter.deniedOnly && line.allowed) return false;
    return !this.filter.keyId || line.keyId === this.filter.keyId;
  }

  /** Queues backlog lines (already filtered, oldest first); called before any offer. */
  prefill(lines: DecisionLine[]): void {
    this.queue.push(...lines.slice(-SUBSCRIBER_QUEUE));
  }

  /** Waiting lines now (what this subscriber holds). */
  get queued(): number {
    return this.queue.length;
  }

  offer(line: DecisionLine): void {
    if (this.closed || !this.wants(line)) return;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      w(line);
      return;
    }
    if (this.queue.length >= SUBSCRIBER_QUEUE) {
      this.queue.shift();
      this.dropped++;
    }
    this.queue.push(line);
  }

  next(): Promise<DecisionLine | undefined> {
    const l = this.queue.shift();
    if (l || this.closed) return Promise.resolve(l);
    return new Promise((r) => {
      this.waiting = r;
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.waiting?.(undefined);
    this.waiting = undefined;
    this.onClose(this);
  }
}

/** The feed of one replica's decisions. */
export class DecisionFeed {
  private readonly subscribers = new Set<Subscriber>();
  /** The ring of recent lines; `head` is where the next one goes. */
  private readonly recent: (DecisionLine | undefined)[] = new Array(RECENT_LINES);
  private head = 0;

  /** True if anyone listens (lines still go to the ring when nobody does). */
  get active(): boolean {
    return this.subscribers.size > 0;
  }

  /** Keeps a line in the ring and hands it to every subscriber whose filter it passes. */
  publish(line: DecisionLine): void {
    this.recent[this.head] = line;
    this.head = (this.head + 1) % RECENT_LINES;
    for (const s of this.subscribers) s.offer(line);
  }

  /**
   * Subscribes; undefined when MAX_SUBSCRIBERS are already listening. The
   * backlog is taken and the subscriber added in one synchronous step, so no
   * line falls between them.
   */
  subscribe(
    filter: DecisionFilter = {},
    options: SubscribeOptions = {},
  ): DecisionSubscription | undefined {
    if (this.subscribers.size >= MAX_SUBSCRIBERS) return undefined;
    const s = new Subscriber(filter, (x) => this.subscribers.delete(x));
    const want = Math.min(options.backlog ?? 0, RECENT_LINES);
    if (want > 0) s.prefill(this.lastLines(want, (l) => s.wants(l)));
    this.subscribers.add(s);
    return s;
  }

  /** The last `n` lines of the ring that `keep` passes, oldest first. */
  private lastLines(n: number, keep: (l: DecisionLine) => boolean): DecisionLine[] {
    const out: DecisionLine[] = [];
    for (let i = 1; i <= RECENT_LINES && out.length < n; i++) {
      const l = this.recent[(this.head - i + RECENT_LINES) % RECENT_LINES];
      if (!l) break;
      if (keep(l)) out.push(l);
    }
    return out.reverse();
  }

  /** Subscribers now. */
  get size(): number {
    return this.subscribers.size;
  }
}
