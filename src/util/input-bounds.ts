/**
 * The bounds table: every bound and pattern the API's input validation uses,
 * in one place, so a bound is changed once and documented once.
 * docs/security-bounds.md ("Fields" and "ext_authz `Check` and Authorize
 * headers") lists each with the same value; test/unit/input-bounds.test.ts
 * holds the two to each other in both directions.
 *
 * Lengths are UTF-8 bytes unless named `…Chars`; counts are entries.
 */

/** Seconds in a day. */
const DAY_S = 86_400;

/** Input bounds of the API (see the module comment). */
export const INPUT_BOUNDS = {
  /** `api_key`, `current_secret`, the API key header: longer is MALFORMED_KEY with no lookup. */
  apiKeyMaxBytes: 256,
  /** Characters after `tg_<env>_` in a key: random base62 and its CRC32 checksum (key-format.ts). */
  secretBodyChars: 30,
  /** `method`: an HTTP method, letters only. */
  methodMaxBytes: 16,
  /** `path`. */
  pathMaxBytes: 2048,
  /** `client_ip` (and an event's `client_ip`). */
  clientIpMaxBytes: 64,
  /** `required_scopes` entries. */
  requiredScopesMax: 32,
  /** `endpoint` of CheckRateLimit and GetUsage. */
  endpointMaxBytes: 128,
  /** Names of the policy (endpoints, tiers) a violation lists at most. */
  listedNamesMax: 8,
  /** `cost` (0: the endpoint's cost), and an endpoint's cost in the policy. */
  maxCost: 1_000_000,
  /** A credit plan's `amount` and `cap`, a balance set or a top-up (policy, CreateKey, UpdateKey). */
  maxCredits: 1_000_000_000_000,
  /** A monthly credit refill's `refill_day` (1 … this: every month has it). */
  creditRefillDayMax: 28,
  /** `subject` of CheckRateLimit, events, blocks and lists. */
  subjectMaxBytes: 256,
  /** `key_id`. */
  keyIdMaxBytes: 64,
  /** `tier`. */
  tierMaxBytes: 64,
  /** A key's `owner` (1 … this). */
  ownerMaxBytes: 128,
  /** A key's `scopes` entries. */
  keyScopesMax: 64,
  /** A key's `metadata` entries. */
  metadataMaxEntries: 32,
  /** A `metadata` key (1 … this). */
  metadataKeyMaxBytes: 64,
  /** A `metadata` value. */
  metadataValueMaxBytes: 512,
  /** CIDRs in each of `ip_allow` and `ip_deny`. */
  ipListMax: 64,
  /** One CIDR of `ip_allow` / `ip_deny`. */
  cidrMaxBytes: 64,
  /** `RotateKey.grace_period`, seconds: 30 days. */
  graceMaxS: 30 * DAY_S,
  /** `RevokeKey.reason` (and an imported key's `revoked_reason`). */
  revokeReasonMaxBytes: 256,
  /** `ListKeys.page_size`. */
  listKeysPageMax: 500,
  /** Every `page_token`. */
  pageTokenMaxBytes: 256,
  /** `ListBlocks.page_size`. */
  listBlocksPageMax: 1000,
  /** `RecordEvent.events` per batch (1 … this). */
  eventsPerBatchMax: 100,
  /** An event's `id` (1 … this). */
  eventIdMaxBytes: 128,
  /** An event's `endpoint`. */
  eventEndpointMaxBytes: 2048,
  /** An event's `attributes` entries. */
  eventAttributesMax: 32,
  /** An event attribute's key. */
  eventAttributeKeyMaxBytes: 64,
  /** An event attribute's value. */
  eventAttributeValueMaxBytes: 1024,
  /** `ListAlerts.rule`. */
  alertRuleMaxBytes: 64,
  /** Buckets a GetUsage range spans at most (a day of minutes). */
  usageBucketsMax: 1440,
  /** `ListEvents.page_size` and `ListAlerts.page_size`. */
  listEventsPageMax: 1000,
  /** `ExportKeys.page_size`. */
  exportPageMax: 1000,
  /** `ExportKeys` page size when none is asked. */
  exportPageDefault: 500,
  /** Bytes at which an ExportKeys page ends early: 256 KiB. */
  exportPageBytes: 256 * 1024,
  /** `ImportKeys.keys` per call (1 … this). */
  importKeysMax: 500,
  /** Earliest year of a time in a request (imported times, event times). */
  minYear: 1970,
  /** Year every time in a request (imported, expiry) must be before. */
  maxYear: 9999,
  /** Characters of a Tollgate digest (HMAC-SHA256, base64url unpadded). */
  hmacDigestChars: 43,
  /** Characters of a foreign SHA-256 digest in hex. */
  sha256HexChars: 64,
  /** Characters of a foreign SHA-256 digest in base64, without and with its padding. */
  sha256Base64Chars: [43, 44],
  /** Characters of `ImportKeys.pepper_fingerprint_prefix` (lower-case hex). */
  pepperFingerprintChars: 8,
  /** Foreign key prefixes a store holds at most. */
  foreignPrefixesMax: 64,
  /** Shortest foreign secret looked up by SHA-256. */
  foreignSecretMinBytes: 12,
  /** Longest foreign secret looked up by SHA-256. */
  foreignSecretMaxBytes: 256,
  /** `limit` of TailDecisions and FollowEvents (0: no such end). */
  streamLimitMax: 100_000,
  /** `TailDecisions.backlog`: the ring of recent decisions holds no more (decision-feed.ts). */
  tailBacklogMax: 1000,
  /** How far before the call `FollowEvents.start_time` may be, seconds: an hour. */
  followStartAgeMaxS: 3600,
  /** How long a `ReportUsage.id` is remembered (a report resent later charges again), seconds: a day. */
  reportIdRetentionS: DAY_S,
  /** `AuthorizeRequest.headers` entries. */
  headersMax: 64,
  /** A header name in `AuthorizeRequest.headers`. */
  headerNameMaxBytes: 256,
  /** A header value in `AuthorizeRequest.headers`. */
  headerValueMaxBytes: 8192,
  /** A limit name of SetLimitOverride / DeleteLimitOverride (the policy's names are 1 … 64). */
  limitNameMaxBytes: 64,
  /** A rate override's `requests` (as a rate in the policy file). */
  overrideRateRequestsMax: 1_000_000_000_000,
  /** A rate override's `burst` (as in the policy file). */
  overrideBurstMax: 1_000_000_000_000_000,
  /** A rate override's `period`, seconds: 366 days (as in the policy file). */
  overridePeriodMaxS: 366 * DAY_S,
  /** `ListLimitOverrides.page_size` without a target. */
  listOverridesPageMax: 1000,
  /** `ListLimitOverrides` page size when none is asked. */
  listOverridesPageDefault: 100,
} as const;

/** Validation patterns of the API; their `{min,max}` are bounds of the table too. */
export const INPUT_PATTERNS = {
  /** A key id: `key_` and 16 base62. */
  keyId: /^key_[0-9A-Za-z]{16}$/,
  /** A key's environment tag. */
  environment: /^[a-z0-9]{1,16}$/,
  /** A scope (of a key, of `required_scopes`, of the policy). */
  scope: /^[A-Za-z0-9:._/*-]{1,128}$/,
  /** An event's `id`. */
  eventId: /^[A-Za-z0-9._:-]{1,128}$/,
  /** A `ReportUsage.id` (the report's idempotency key). */
  reportId: /^[A-Za-z0-9._:-]{1,128}$/,
  /** An event's `custom_type`. */
  customType: /^[a-z0-9._-]{1,64}$/,
  /** A foreign key prefix. */
  foreignPrefix: /^[A-Za-z0-9_-]{2,32}$/,
} as const;
