/**
 * The skip list: paths that bypass Tollgate (health checks, public pages).
 * An entry is an exact path (`/healthz`) or, ending in `*`, a prefix
 * (`/public/*` matches `/public/` and everything under it).
 *
 * A path with dot segments, empty segments, percent-escapes or a backslash is
 * never skipped, whatever the list says: such spellings could be resolved by a
 * router to a protected route while looking like a skipped one
 * (`/public/../admin`). They go through Tollgate like any other request.
 */

/** A compiled skip list: true if `path` (without the query) bypasses Tollgate. */
export function compileSkip(entries: readonly string[] | undefined): (path: string) => boolean {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const e of entries ?? []) {
    if (e.endsWith("*")) prefixes.push(e.slice(0, -1));
    else exact.add(e);
  }
  if (exact.size === 0 && prefixes.length === 0) return () => false;
  return (path) => {
    if (!isPlainPath(path)) return false;
    return exact.has(path) || prefixes.some((p) => path.startsWith(p));
  };
}

/** A path a router cannot resolve to another one: no `.`/`..`/empty segments, `%` or `\`. */
function isPlainPath(path: string): boolean {
  if (!path.startsWith("/") || path.includes("%") || path.includes("\\") || path.includes("//")) {
    return false;
  }
  return !path.split("/").some((seg) => seg === "." || seg === "..");
}
