import { type FSWatcher, watch } from "node:fs";
import { basename, dirname } from "node:path";
import type { Logger } from "../observability/logger.js";
import { loadPolicyFile, type Policy, PolicyError } from "./policy.js";

/** Options of PolicyHolder. */
export interface PolicyHolderOptions {
  initial: Policy;
  /** The policy file, or undefined for the built-in policy (nothing to reload). */
  file?: string;
  log: Logger;
  /** Counts reloads by result (metrics). */
  onReload?: (result: "success" | "failure") => void;
  /** Debounce of file events, ms (editors and ConfigMap updates write in bursts). Default 200. */
  debounceMs?: number;
}

/**
 * Holds the current policy and replaces it whole on reload. A reload that fails
 * validation is refused loudly (error log + metric) and the old policy stays in
 * force: limits are never silently dropped. Watches the file's directory, since
 * Kubernetes updates a mounted ConfigMap by swapping a symlink.
 */
export class PolicyHolder {
  private current: Policy;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reloading: Promise<boolean> | undefined;

  constructor(private readonly o: PolicyHolderOptions) {
    this.current = o.initial;
  }

  /** The policy in force. */
  get(): Policy {
    return this.current;
  }

  /** Re-reads the file; true if a new policy is now in force. */
  reload(): Promise<boolean> {
    if (!this.o.file) return Promise.resolve(false);
    // Serialise reloads so an older read can never replace a newer one.
    const run = async (): Promise<boolean> => {
      try {
        const next = await loadPolicyFile(this.o.file as string);
        this.current = next;
        this.o.onReload?.("success");
        this.o.log.info(
          { policy: next.source, endpoints: next.endpoints.length },
          "policy reloaded",
        );
        return true;
      } catch (err) {
        this.o.onReload?.("failure");
        const message = err instanceof PolicyError ? err.message : (err as Error).message;
        this.o.log.error(
          { err: { message } },
          "policy reload refused; the previous policy stays in force",
        );
        return false;
      }
    };
    const p = (this.reloading ?? Promise.resolve(false)).then(run, run);
    this.reloading = p;
    return p;
  }

  /** Starts reloading on file changes. */
  watch(): void {
    if (!this.o.file || this.watcher) return;
    const file = this.o.file;
    const name = basename(file);
    this.watcher = watch(dirname(file), (_event, changed) => {
      // ConfigMap swaps touch `..data`; editors may rename. Reload on anything
      // that could be the file; an unchanged file reloads harmlessly.
      if (changed && changed !== name && !String(changed).startsWith("..")) return;
      clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.reload(), this.o.debounceMs ?? 200);
    });
    this.watcher.on("error", (err) =>
      this.o.log.error({ err: { message: err.message } }, "policy watch failed"),
    );
  }

  /** Stops watching. */
  close(): void {
    clearTimeout(this.timer);
    this.watcher?.close();
    this.watcher = undefined;
  }
}
