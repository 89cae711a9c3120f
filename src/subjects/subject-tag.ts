/**
 * Subject tags: the namespace of whom a limit, a block or a detection window
 * is about (`k:<key id>`, `o:<owner>`, `i:<ip>`, `e:<endpoint>`, `s:<subject>`).
 * One bucket namespace, and one Redis Cluster slot, per subject. Shared by
 * rate limiting, detection and the services that name blocks.
 */

/** Tag of a subject: one bucket namespace (and Cluster slot) per subject. */
export function subjectTag(
  kind: "key" | "owner" | "ip" | "endpoint" | "subject",
  value: string,
): string {
  return `${kind[0]}:${value}`;
}
