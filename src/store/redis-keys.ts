/**
 * Names of every Redis key Tollgate writes. Each embeds a `{hash tag}` so all
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
    /** Pub/sub channel of cache invalidations. */
    invalidationChannel: () => `${prefix}invalidate`,
  };
}

/** The key-name builder type. */
export type KeyNames = ReturnType<typeof createKeyNames>;
