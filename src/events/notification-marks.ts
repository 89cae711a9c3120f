/**
 * Once-only markers of notifications, shared by every replica: before an
 * alert of a threshold crossing or a key notice is raised, its marker is
 * claimed, and only the replica whose claim took it raises the alert. A
 * marker lives until the period it stands for ends (a quota's window, a key's
 * expiry), then the same notice may fire again for the next period.
 */

/** The marker store: one atomic claim per marker. */
export interface NotificationMarks {
  /**
   * Takes marker `id` until `untilMs` (epoch ms; at least a second from now is
   * kept). Resolves true if this call took it, false if it was held already.
   * `tag` is the subject the marker is about (its Cluster slot).
   */
  claim(tag: string, id: string, untilMs: number): Promise<boolean>;
}
