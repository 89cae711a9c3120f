/**
 * The lifetime of a command that streams until told to stop (`decisions tail
 * --follow`, `events list --follow`): Ctrl-C (SIGINT), SIGTERM or a closed
 * stdout (EPIPE: `| head` has read enough) abort one signal, which cancels the
 * stream; output waits for stdout to drain, so a slow terminal or pipe slows
 * the reading of the stream (and the server's back-pressure takes over)
 * instead of filling memory.
 */
import { once } from "node:events";

/** What a streaming command holds while it runs. */
export interface FollowSession {
  /** Aborted by SIGINT, SIGTERM or EPIPE on stdout: hand it to the call. */
  readonly signal: AbortSignal;
  /** Writes to stdout; resolves once stdout can take more (or the session ends). */
  write(text: string): Promise<void>;
  /** Removes the signal and stdout listeners. */
  dispose(): void;
}

/** Starts a session over this process's signals and stdout. */
export function followSession(): FollowSession {
  const abort = new AbortController();
  const stop = () => abort.abort();
  const onError = (err: NodeJS.ErrnoException) => {
    // The reader went away: stop quietly, as `tail -f | head` expects.
    if (err.code === "EPIPE") abort.abort();
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  process.stdout.on("error", onError);
  return {
    signal: abort.signal,
    async write(text) {
      if (abort.signal.aborted) return;
      if (process.stdout.write(text)) return;
      try {
        await once(process.stdout, "drain", { signal: abort.signal });
      } catch {
        // Aborted while waiting: nothing more is written.
      }
    },
    dispose() {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      process.stdout.off("error", onError);
    },
  };
}
