/**
 * A progress counter for long CLI commands: one line on stderr, rewritten in
 * place (`\r`) at most five times a second, and only when stderr is a
 * terminal, so logs and pipes get nothing but the final summary.
 */

/** Options of Progress. */
export interface ProgressOptions {
  /** What is counted, e.g. "exported". */
  verb: string;
  /** Where to write. Default process.stderr. */
  stream?: NodeJS.WriteStream;
  /** Force on or off. Default: on when `stream` is a TTY. */
  enabled?: boolean;
}

/** Counts keys and shows the count with a rate. */
export class Progress {
  private count = 0;
  private shownAt = 0;
  private readonly started = Date.now();
  private readonly stream: NodeJS.WriteStream;
  private readonly enabled: boolean;

  constructor(private readonly o: ProgressOptions) {
    this.stream = o.stream ?? process.stderr;
    this.enabled = o.enabled ?? this.stream.isTTY === true;
  }

  /** Adds `n` to the count and redraws if it is time. */
  add(n: number): void {
    this.count += n;
    const now = Date.now();
    if (this.enabled && now - this.shownAt >= 200) {
      this.shownAt = now;
      this.stream.write(`\r${this.line(now)}\x1b[K`);
    }
  }

  /** The count so far. */
  get total(): number {
    return this.count;
  }

  /** Seconds since the start. */
  get seconds(): number {
    return (Date.now() - this.started) / 1000;
  }

  /** Clears the progress line (before the summary is printed). */
  done(): void {
    if (this.enabled && this.shownAt > 0) this.stream.write("\r\x1b[K");
  }

  private line(now: number): string {
    const s = Math.max(0.001, (now - this.started) / 1000);
    return `${this.o.verb} ${this.count} keys (${Math.round(this.count / s)}/s)`;
  }
}
