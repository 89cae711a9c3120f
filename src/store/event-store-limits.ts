/** Bounds the event stores share (see EventStore and EventRetention in events/event-store.ts). */

/** Default of EventRetention.maxBytes: 64 MiB. */
export const DEFAULT_EVENT_MAX_BYTES = 64 * 1024 * 1024;

/** Most records one list call examines before returning a (possibly short) page with a cursor. */
export const LIST_SCAN_LIMIT = 5000;
