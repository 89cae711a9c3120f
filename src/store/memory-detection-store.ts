import type {
  DetectionStore,
  SpikeOp,
  SpikeResult,
  WindowOp,
  WindowResult,
} from "../events/detection-store.js";
import type { Clock } from "../util/clock.js";
import {
  EVICT_TO,
  type MemoryBounds,
  type MemoryUsage,
  stringBytes,
} from "../util/memory-usage.js";
import { pickEvictions } from "../util/pick-evictions.js";

interface WindowState {
  members: Map<string, number>;
  expiresAt: number;
  /** Estimated bytes: the state, its key and its members. */
  bytes: number;
}

interface SpikeState {
  bucket: number;
  count: number;
  baseline: number;
  seen: number;
  expiresAt: number;
}

/** Writes between sweeps of expired state. */
const SWEEP_EVERY = 10_000;
/** A window's Map slot, state object and members Map, bytes (its key string besides). */
const WINDOW_OVERHEAD = 280;
/** One member's slot in a window's Map (its string besides). */
const MEMBER_OVERHEAD = 64;
/** A spike state's Map slot and object with its boxed numbers. */
const SPIKE_OVERHEAD = 240;
/** A cool-down's Map slot and boxed time. */
const COOLDOWN_OVERHEAD = 96;

/** Default bounds (the settings' defaults). */
export const DETECTION_STORE_DEFAULTS: MemoryBounds = {
  maxEntries: 50_000,
  maxBytes: 8 * 1024 * 1024,
};

/**
 * The embedded detection store: the same semantics as detect-window-2.lua and
 * detect-spike-2.lua over process memory, with the injected clock. Every entry
 * expires; expired entries are swept periodically.
 *
 * Bounded in entries (windows, spike states and cool-downs together) and in
 * estimated bytes (members included). Past a bound, expired state goes first,
 * then — in one batch, down to 90 % of both bounds — what holds the least:
 * cool-downs first (losing one can only let an alert fire again, never hide
 * one), then windows and spike states by the evidence they hold (members,
 * buckets of history), ties oldest first. A flood of distinct subjects each
 * seen once can so only push out windows holding as little as one event; a
 * window that is close to firing outlives them all.
 */
export class MemoryDetectionStore implements DetectionStore {
  private readonly windows = new Map<string, WindowState>();
  private readonly spikes = new Map<string, SpikeState>();
  private readonly cooldowns = new Map<string, number>();
  private readonly bounds: MemoryBounds;
  private writes = 0;
  private bytes = 0;
  private evictions = 0;

  /** `bounds` defaults to DETECTION_STORE_DEFAULTS (50 000 entries, 8 MiB). */
  constructor(
    private readonly clock: Clock,
    bounds: Partial<MemoryBounds> = {},
  ) {
    this.bounds = { ...DETECTION_STORE_DEFAULTS, ...bounds };
  }

  async window(op: WindowOp): Promise<WindowResult> {
    const now = this.clock.now();
    const key = `${op.rule}\u0000${op.tag}`;
    let w = this.windows.get(key);
    if (w && w.expiresAt <= now) this.dropWindow(key, w);
    if (!w || w.expiresAt <= now) {
      w = { members: new Map(), expiresAt: 0, bytes: WINDOW_OVERHEAD + stringBytes(key) };
      this.windows.set(key, w);
      this.bytes += w.bytes;
    }
    const before = w.bytes;
    for (const [m, at] of w.members) {
      if (at <= now - op.windowMs) {
        w.members.delete(m);
        w.bytes -= MEMBER_OVERHEAD + stringBytes(m);
      }
    }
    let fire = false;
    if (op.mode === "new" && w.members.size >= op.threshold) {
      const held = w.members;
      fire = op.members.some((m) => !held.has(m));
    }
    for (const m of op.members) {
      if (!w.members.delete(m)) w.bytes += MEMBER_OVERHEAD + stringBytes(m);
      w.members.set(m, now);
    }
    // Insertion order is age order: drop the oldest beyond the cap.
    for (const m of w.members.keys()) {
      if (w.members.size <= op.cap) break;
      w.members.delete(m);
      w.bytes -= MEMBER_OVERHEAD + stringBytes(m);
    }
    w.expiresAt = now + op.windowMs;
    this.bytes += w.bytes - before;
    let count = w.members.size;
    // "sum": members are `<weight>:<id>` (aggregated events carry their count).
    if (op.mode === "sum") {
      count = 0;
      for (const m of w.members.keys()) count += Number(/^(\d+):/.exec(m)?.[1] ?? 1);
    }
    if (op.mode !== "new" && count >= op.threshold) fire = true;
    const fired = fire && this.takeCooldown(key, op.cooldownMs, now);
    this.wrote(now);
    return { count, fired };
  }

  async spike(op: SpikeOp): Promise<SpikeResult> {
    const now = this.clock.now();
    const key = `${op.rule}\u0000${op.tag}`;
    const bucket = Math.floor(now / op.bucketMs);
    let s = this.spikes.get(key);
    if (s && s.expiresAt <= now) this.dropSpike(key);
    if (!s || s.expiresAt <= now) {
      s = { bucket, count: 0, baseline: 0, seen: 0, expiresAt: 0 };
      this.spikes.set(key, s);
      this.bytes += SPIKE_OVERHEAD + stringBytes(key);
    }
    if (bucket > s.bucket) {
      s.baseline += op.alpha * (s.count - s.baseline);
      const gap = Math.min(bucket - s.bucket - 1, 100_000);
      if (gap > 0) s.baseline *= (1 - op.alpha) ** gap;
      s.seen = Math.min(s.seen + 1 + gap, 1e9);
      s.count = 0;
      s.bucket = bucket;
    }
    s.count += op.requests;
    s.expiresAt = now + op.ttlMs;
    const fire =
      s.seen >= op.minHistory && s.count >= op.minRequests && s.count > op.factor * s.baseline;
    const result = {
      current: s.count,
      baseline: s.baseline,
      fired: fire && this.takeCooldown(key, op.cooldownMs, now),
    };
    this.wrote(now);
    return result;
  }

  /** Windows, spike states and cool-downs, their estimated bytes and evictions, for the memory gauges. */
  usage(): MemoryUsage {
    return { entries: this.entries(), bytes: this.bytes, evictions: this.evictions };
  }

  private entries(): number {
    return this.windows.size + this.spikes.size + this.cooldowns.size;
  }

  private takeCooldown(key: string, ms: number, now: number): boolean {
    const until = this.cooldowns.get(key);
    if (until !== undefined && until > now) return false;
    if (until === undefined) this.bytes += COOLDOWN_OVERHEAD + stringBytes(key);
    this.cooldowns.set(key, now + ms);
    return true;
  }

  private dropWindow(key: string, w: WindowState): void {
    if (this.windows.delete(key)) this.bytes -= w.bytes;
  }

  private dropSpike(key: string): void {
    if (this.spikes.delete(key)) this.bytes -= SPIKE_OVERHEAD + stringBytes(key);
  }

  private dropCooldown(key: string): void {
    if (this.cooldowns.delete(key)) this.bytes -= COOLDOWN_OVERHEAD + stringBytes(key);
  }

  /** After a write: shrink if over a bound, else sweep now and then. */
  private wrote(now: number): void {
    if (this.entries() > this.bounds.maxEntries || this.bytes > this.bounds.maxBytes) {
      this.shrink(now);
    } else if (++this.writes % SWEEP_EVERY === 0) {
      this.sweep(now);
    }
  }

  private sweep(now: number): void {
    for (const [k, w] of this.windows) if (w.expiresAt <= now) this.dropWindow(k, w);
    for (const [k, s] of this.spikes) if (s.expiresAt <= now) this.dropSpike(k);
    for (const [k, u] of this.cooldowns) if (u <= now) this.dropCooldown(k);
  }

  /** Expired state, then what holds the least (see the class comment), to EVICT_TO of both bounds. */
  private shrink(now: number): void {
    this.sweep(now);
    const keepEntries = Math.floor(this.bounds.maxEntries * EVICT_TO);
    const keepBytes = Math.floor(this.bounds.maxBytes * EVICT_TO);
    const n = this.entries();
    if (n <= keepEntries && this.bytes <= keepBytes) return;
    const values = new Float64Array(n);
    const sizes = new Float64Array(n);
    let i = 0;
    // Cool-downs hold nothing worth keeping over evidence: rank 0.
    for (const k of this.cooldowns.keys()) sizes[i++] = COOLDOWN_OVERHEAD + stringBytes(k);
    for (const w of this.windows.values()) {
      values[i] = w.members.size;
      sizes[i++] = w.bytes;
    }
    for (const [k, s] of this.spikes) {
      values[i] = s.seen;
      sizes[i++] = SPIKE_OVERHEAD + stringBytes(k);
    }
    const evict = pickEvictions(values, sizes, keepEntries, keepBytes);
    i = 0;
    const out = (drop: () => void) => {
      if (evict[i++] === 1) {
        drop();
        this.evictions++;
      }
    };
    for (const k of this.cooldowns.keys()) out(() => this.dropCooldown(k));
    for (const [k, w] of this.windows) out(() => this.dropWindow(k, w));
    for (const k of this.spikes.keys()) out(() => this.dropSpike(k));
  }
}
