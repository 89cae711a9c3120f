import type { Clock } from "../util/clock.js";
import type {
  DetectionStore,
  SpikeOp,
  SpikeResult,
  WindowOp,
  WindowResult,
} from "./detection-store.js";

interface WindowState {
  members: Map<string, number>;
  expiresAt: number;
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

/**
 * The embedded detection store: the same semantics as detect-window-2.lua and
 * detect-spike-2.lua over process memory, with the injected clock. Every entry
 * expires; expired entries are swept periodically.
 */
export class MemoryDetectionStore implements DetectionStore {
  private readonly windows = new Map<string, WindowState>();
  private readonly spikes = new Map<string, SpikeState>();
  private readonly cooldowns = new Map<string, number>();
  private writes = 0;

  constructor(private readonly clock: Clock) {}

  async window(op: WindowOp): Promise<WindowResult> {
    const now = this.clock.now();
    const key = `${op.rule}\u0000${op.tag}`;
    let w = this.windows.get(key);
    if (!w || w.expiresAt <= now) w = { members: new Map(), expiresAt: 0 };
    for (const [m, at] of w.members) if (at <= now - op.windowMs) w.members.delete(m);
    let fire = false;
    if (op.mode === "new" && w.members.size >= op.threshold) {
      fire = op.members.some((m) => !w.members.has(m));
    }
    for (const m of op.members) {
      w.members.delete(m);
      w.members.set(m, now);
    }
    // Insertion order is age order: drop the oldest beyond the cap.
    for (const m of w.members.keys()) {
      if (w.members.size <= op.cap) break;
      w.members.delete(m);
    }
    w.expiresAt = now + op.windowMs;
    this.windows.set(key, w);
    let count = w.members.size;
    if (op.mode === "sum") {
      count = 0;
      for (const m of w.members.keys()) count += Number(/^(\d+):/.exec(m)?.[1] ?? 1);
    }
    if (op.mode !== "new" && count >= op.threshold) fire = true;
    this.sweep(now);
    return { count, fired: fire && this.takeCooldown(key, op.cooldownMs, now) };
  }

  async spike(op: SpikeOp): Promise<SpikeResult> {
    const now = this.clock.now();
    const key = `${op.rule}\u0000${op.tag}`;
    const bucket = Math.floor(now / op.bucketMs);
    let s = this.spikes.get(key);
    if (!s || s.expiresAt <= now) s = { bucket, count: 0, baseline: 0, seen: 0, expiresAt: 0 };
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
    this.spikes.set(key, s);
    const fire =
      s.seen >= op.minHistory && s.count >= op.minRequests && s.count > op.factor * s.baseline;
    this.sweep(now);
    return {
      current: s.count,
      baseline: s.baseline,
      fired: fire && this.takeCooldown(key, op.cooldownMs, now),
    };
  }

  private takeCooldown(key: string, ms: number, now: number): boolean {
    const until = this.cooldowns.get(key);
    if (until !== undefined && until > now) return false;
    this.cooldowns.set(key, now + ms);
    return true;
  }

  private sweep(now: number): void {
    if (++this.writes % SWEEP_EVERY !== 0) return;
    for (const [k, w] of this.windows) if (w.expiresAt <= now) this.windows.delete(k);
    for (const [k, s] of this.spikes) if (s.expiresAt <= now) this.spikes.delete(k);
    for (const [k, u] of this.cooldowns) if (u <= now) this.cooldowns.delete(k);
  }
}
