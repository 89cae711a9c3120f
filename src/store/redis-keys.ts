/**
 * Names of every Redis key Tollgate writes, in one module: keys, rate limits
 * and blocks, the store marker, events, detection state and usage counters.
 * No other module builds a key name. Each embeds a `{hash tag}` so all
 * keys of one operation map to one Cluster slot. Tags are escaped so that a
 * subject containing `{`, `}` or `:` cannot change the slot or collide with
 * another tenant's key.
 */

/** Escapes a value for use inside a hash tag: `{`, `}` and `%` are percent-encoded. */
export function tagValue(value: string): string {
  return value.replace(/[%{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Builds key names under one namespace prefix (default `tg:`). */
export function createKeyNames(prefix: string) {
  return {
    /** A key record (JSON). */
    record: (id: string) => `${prefix}key:{${tagValue(id)}}`,
    /** Digest → key id index entry. */
    digest: (digest: string) => `${prefix}kd:{${tagValue(digest)}}`,
    /** Sorted set of all key ids (lexicographic paging). */
    keyIndex: () => `${prefix}keys:{index}`,
    /** Set of the foreign key prefixes imports registered (see keys/foreign-keys.ts). */
    foreignPrefixes: () => `${prefix}foreign-prefixes:{index}`,
    /** A rate-limit bucket of one limit for one subject tag. */
    bucket: (tag: string, bucketId: string) => `${prefix}rl:{${tagValue(tag)}}:${bucketId}`,
    /** Idempotency marker of a usage report, in the slot of the buckets it charged. */
    reportMarker: (tag: string, id: string) => `${prefix}ur:{${tagValue(tag)}}:${tagValue(id)}`,
    /** Block marker of a subject (value: offence level; TTL: time left). */
    block: (tag: string) => `${prefix}bl:{${tagValue(tag)}}`,
    /** Offence level memory of a subject (escalation). */
    offences: (tag: string) => `${prefix}bo:{${tagValue(tag)}}`,
    /** Denials counted toward a block. */
    denials: (tag: string) => `${prefix}bd:{${tagValue(tag)}}`,
    /** Sorted set of blocked tags by end time, for listing. */
    blockIndex: () => `${prefix}blocks:{index}`,
    /** The store marker: the pepper fingerprint (no expiry; see redis-store-marker.ts). */
    marker: () => `${prefix}marker:{marker}`,
    /** The store's epoch: a random id written once; a new one means the data was lost. */
    epoch: () => `${prefix}marker:{marker}:epoch`,
    /** An owner's limit overrides (hash: limit name → JSON), in the owner's rate-limit slot. */
    ownerOverrides: (owner: string) => `${prefix}ovr:{${tagValue(`o:${owner}`)}}`,
    /** Set of owners with limit overrides (for listing). */
    overrideOwners: () => `${prefix}ovr-owners:{index}`,
    /** Set of key ids whose records hold limit overrides (for listing). */
    overrideKeys: () => `${prefix}ovr-keys:{index}`,
    /** Pub/sub channel of cache invalidations. */
    invalidationChannel: () => `${prefix}invalidate`,
  };
}

/** The key-name builder type. */
export type KeyNames = ReturnType<typeof createKeyNames>;

/** Redis key names of events and alerts under `prefix` (shard `n`: one hash tag `{evN}` each). */
export function eventKeyNames(prefix: string) {
  return {
    /** Stream shard `n` of events. */
    shard: (n: number) => `${prefix}ev:{ev${n}}`,
    /** Idempotency markers of shard `n` (sorted set: id digest → recorded at), in its slot. */
    marks: (n: number) => `${prefix}eid:{ev${n}}`,
    /** Counts of shard `n` (hash: b bytes, m entries with a marker). */
    bytes: (n: number) => `${prefix}evb:{ev${n}}`,
    /** The alerts stream. */
    alerts: () => `${prefix}alerts:{alerts}`,
  };
}

/** Redis key names of detection state under `prefix`, hash-tagged by subject. */
export function detectionKeyNames(prefix: string) {
  return {
    /** Sliding window of a rule for a subject (sorted set). */
    window: (tag: string, rule: string) => `${prefix}dw:{${tagValue(tag)}}:${rule}`,
    /** Spike state of a rule for a key (hash). */
    spike: (tag: string, rule: string) => `${prefix}ds:{${tagValue(tag)}}:${rule}`,
    /** Cool-down marker of a rule for a subject. */
    cooldown: (tag: string, rule: string) => `${prefix}dc:{${tagValue(tag)}}:${rule}`,
    /** The subjects a rule tracks (sorted set by last seen), in the rule's own slot. */
    tracked: (rule: string) => `${prefix}dt:{dt:${tagValue(rule)}}`,
  };
}

/** Redis key names of usage counters, hash-tagged by key id (`{k:<id>}`, the key's rate-limit slot). */
export function usageKeyNames(prefix: string) {
  return {
    /** Hash endpoint → requests of one key in one minute or hour (bucket start, epoch ms). */
    counts: (keyId: string, resolution: "minute" | "hour", start: number) =>
      `${prefix}us:{${tagValue(`k:${keyId}`)}}:${resolution === "minute" ? "m" : "h"}:${start}`,
  };
}

/** Redis key names of notification markers (events/notification-marks.ts), hash-tagged by subject. */
export function notificationKeyNames(prefix: string) {
  return {
    /** Once-only marker `id` of a subject's notice (string "1", expiring with its period). */
    mark: (tag: string, id: string) => `${prefix}nm:{${tagValue(tag)}}:${id}`,
  };
}
