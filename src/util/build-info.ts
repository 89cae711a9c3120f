/**
 * What this build is: the package version and the git commit it was built
 * from (written to dist/build-info.json by `npm run build`; "unknown" outside
 * a git checkout), and the Node it runs on. Shown by `tollgate version`, the
 * startup log line and the `tollgate_build_info` metric.
 */
import { readFileSync } from "node:fs";

/** This build's identity. */
export interface BuildInfo {
  version: string;
  commit: string;
  node: string;
}

let cached: BuildInfo | undefined;

/** Reads dist/build-info.json once (falls back to package.json, then "unknown"). */
export function buildInfo(): BuildInfo {
  if (cached) return cached;
  const read = (rel: string): Record<string, unknown> | undefined => {
    try {
      return JSON.parse(readFileSync(new URL(rel, import.meta.url), "utf8")) as Record<
        string,
        unknown
      >;
    } catch {
      return undefined;
    }
  };
  // dist/util/build-info.js → dist/build-info.json; the package root is one further up.
  const info = read("../build-info.json") ?? read("../../package.json") ?? {};
  cached = {
    version: typeof info.version === "string" ? info.version : "unknown",
    commit: typeof info.commit === "string" ? info.commit : "unknown",
    node: process.version,
  };
  return cached;
}
