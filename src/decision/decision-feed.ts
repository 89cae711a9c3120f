/**
 * The live feed of decisions: what `tollgate decisions tail`, the web console's
 * live view and any other watcher of this replica subscribe to. A line is the
 * access-log line of a decision (never a secret). Publishing costs nothing
 * while nobody listens; each subscriber has a bounded queue, and a subscriber
 * that does not keep up loses the oldest lines (counted), never slows a decision.
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

/** A subscription: pull lines with `next`, stop with `close`. */
export interface DecisionSubscription {
  /** The next line; resolves undefined once closed. */
  next(): Promise<DecisionLine | undefined>;
  /** Lines dropped because this subscriber fell behind. */
  readonly dropped: number;
  close(): void;
}

/** Most subscribers at once (each holds a queue). */
export const MAX_SUBSCRIBERS = 64;
/** Lines a subscriber may have waiting; older ones are dropped beyond it. */
export const SUBSCRIBER_QUEUE = 1000;

class Subscriber implements DecisionSubscription {
  private readonly queue: DecisionLine[] = [];
  private waiting: ((l: DecisionLine | undefined) => void) | undefined;
  private closed = false;
  dropped = 0;

  constructor(
    private readonly filter: DecisionFilter,
    private readonly onClose: (s: Subscriber) => void,
  ) {}

  offer(line: DecisionLine): void {
    if (this.closed) return;
    if (this.filter.deniedOnly && line.allowed) return;
    if (this.filter.keyId && line.keyId !== this.filter.keyId) return;
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

  /** True if anyone listens (the observer builds no line otherwise). */
  get active(): boolean {
    return this.subscribers.size > 0;
  }

  /** Hands a line to every subscriber whose filter it passes. */
  publish(line: DecisionLine): void {
    for (const s of this.subscribers) s.offer(line);
  }

  /** Subscribes; undefined when MAX_SUBSCRIBERS are already listening. */
  subscribe(filter: DecisionFilter = {}): DecisionSubscription | undefined {
    if (this.subscribers.size >= MAX_SUBSCRIBERS) return undefined;
    const s = new Subscriber(filter, (x) => this.subscribers.delete(x));
    this.subscribers.add(s);
    return s;
  }

  /** Subscribers now. */
  get size(): number {
    return this.subscribers.size;
  }
}
