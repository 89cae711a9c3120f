/**
 * The bounds table (src/util/input-bounds.ts) and docs/security-bounds.md say
 * the same thing: every entry of the table appears, with its value, in the
 * doc rows it belongs to, and every number a row of the doc's "Fields" table
 * (and the two key / header rows of the ext_authz table) gives is a value of
 * the table. 0 and 1 are not compared: they are the lower ends of ranges
 * ("0 …", "1 … 128") that the table states as "at most".
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { INPUT_BOUNDS, INPUT_PATTERNS } from "../../src/util/input-bounds.js";

type Key = keyof typeof INPUT_BOUNDS | keyof typeof INPUT_PATTERNS;

/** Where each entry is documented: the first cell of its rows, and how the doc writes its value. */
const DOCUMENTED: Record<Key, { rows: string[]; shown?: (v: number) => number }> = {
  apiKeyMaxBytes: { rows: ["`api_key`, `current_secret`", "the API key header"] },
  secretBodyChars: { rows: ["`api_key`, `current_secret`"] },
  methodMaxBytes: { rows: ["`method`"] },
  pathMaxBytes: { rows: ["`path`"] },
  clientIpMaxBytes: { rows: ["`client_ip`", "`RecordEvent.events`"] },
  requiredScopesMax: { rows: ["`required_scopes`"] },
  endpointMaxBytes: { rows: ["`endpoint`", "`GetUsage`"] },
  listedNamesMax: { rows: ["`endpoint`", "`tier`", "`SetLimitOverride.limit_override`"] },
  maxCost: { rows: ["`cost`", "`ReportUsage`"] },
  maxCredits: { rows: ["key `credits` (and a tier's `credits`)"] },
  creditRefillDayMax: { rows: ["key `credits` (and a tier's `credits`)"] },
  subjectMaxBytes: {
    rows: [
      "`subject` (CheckRateLimit, events, DeleteBlock)",
      "`RecordEvent.events`",
      "`ListEvents` / `ListAlerts.page_size`",
    ],
  },
  keyIdMaxBytes: { rows: ["`key_id`", "`RecordEvent.events`"] },
  tierMaxBytes: { rows: ["`tier`"] },
  ownerMaxBytes: { rows: ["key `owner`"] },
  keyScopesMax: { rows: ["key `scopes`"] },
  metadataMaxEntries: { rows: ["key `metadata`"] },
  metadataKeyMaxBytes: { rows: ["key `metadata`"] },
  metadataValueMaxBytes: { rows: ["key `metadata`"] },
  ipListMax: { rows: ["key `ip_allow` / `ip_deny`"] },
  cidrMaxBytes: { rows: ["key `ip_allow` / `ip_deny`"] },
  graceMaxS: { rows: ["`RotateKey.grace_period`"], shown: (s) => s / 86_400 },
  revokeReasonMaxBytes: { rows: ["`RevokeKey.reason`"] },
  listKeysPageMax: { rows: ["`ListKeys.page_size`"] },
  pageTokenMaxBytes: { rows: ["`ListKeys.page_size`", "`ExportKeys.page_size`"] },
  listBlocksPageMax: { rows: ["`ListBlocks.page_size`"] },
  eventsPerBatchMax: { rows: ["`RecordEvent.events`"] },
  eventIdMaxBytes: { rows: ["`RecordEvent.events`"] },
  eventEndpointMaxBytes: { rows: ["`RecordEvent.events`"] },
  eventAttributesMax: { rows: ["`RecordEvent.events`"] },
  eventAttributeKeyMaxBytes: { rows: ["`RecordEvent.events`"] },
  eventAttributeValueMaxBytes: { rows: ["`RecordEvent.events`"] },
  alertRuleMaxBytes: { rows: ["`ListEvents` / `ListAlerts.page_size`"] },
  usageBucketsMax: { rows: ["`GetUsage`"] },
  listEventsPageMax: { rows: ["`ListEvents` / `ListAlerts.page_size`"] },
  exportPageMax: { rows: ["`ExportKeys.page_size`"] },
  exportPageDefault: { rows: ["`ExportKeys.page_size`"] },
  exportPageBytes: { rows: ["`ExportKeys.page_size`"], shown: (b) => b / 1024 },
  importKeysMax: { rows: ["`ImportKeys.keys`"] },
  minYear: { rows: ["`ImportKeys.keys`", "`RecordEvent.events`"] },
  maxYear: { rows: ["`ImportKeys.keys`", "`SetLimitOverride.limit_override`"] },
  hmacDigestChars: { rows: ["`ImportKeys.keys`"] },
  sha256HexChars: { rows: ["`ImportKeys.keys`"] },
  sha256Base64Chars: { rows: ["`ImportKeys.keys`"] },
  pepperFingerprintChars: { rows: ["`ImportKeys.pepper_fingerprint_prefix`"] },
  foreignPrefixesMax: { rows: ["`foreign_prefix`"] },
  foreignSecretMinBytes: { rows: ["foreign secrets looked up by SHA-256"] },
  foreignSecretMaxBytes: { rows: ["foreign secrets looked up by SHA-256"] },
  streamLimitMax: { rows: ["`TailDecisions` / `FollowEvents`"] },
  tailBacklogMax: { rows: ["`TailDecisions` / `FollowEvents`"] },
  followStartAgeMaxS: { rows: ["`TailDecisions` / `FollowEvents`"] },
  reportIdRetentionS: { rows: ["`ReportUsage`"], shown: (s) => s / 3600 },
  headersMax: { rows: ["`AuthorizeRequest.headers`"] },
  headerNameMaxBytes: { rows: ["`AuthorizeRequest.headers`"] },
  headerValueMaxBytes: { rows: ["`AuthorizeRequest.headers`"] },
  limitNameMaxBytes: {
    rows: ["`SetLimitOverride.limit_override`", "`DeleteLimitOverride.limit`"],
  },
  overrideRateRequestsMax: { rows: ["`SetLimitOverride.limit_override`"] },
  overrideBurstMax: { rows: ["`SetLimitOverride.limit_override`"] },
  overridePeriodMaxS: { rows: ["`SetLimitOverride.limit_override`"], shown: (s) => s / 86_400 },
  listOverridesPageMax: { rows: ["`ListLimitOverrides.page_size`"] },
  listOverridesPageDefault: { rows: ["`ListLimitOverrides.page_size`"] },
  keyId: { rows: ["`key_id`"] },
  environment: { rows: ["key `environment` (CreateKey, ImportKeys)"] },
  scope: { rows: ["`required_scopes`"] },
  eventId: { rows: ["`RecordEvent.events`"] },
  reportId: { rows: ["`ReportUsage`"] },
  customType: { rows: ["`RecordEvent.events`"] },
  foreignPrefix: { rows: ["`foreign_prefix`"] },
};

/** Rows of the ext_authz table that bound API fields (the others are settings). */
const EXT_AUTHZ_ROWS = ["the API key header", "`AuthorizeRequest.headers`"];

const doc = readFileSync(new URL("../../docs/security-bounds.md", import.meta.url), "utf8");

/** The rows (first cell → second cell) of the table under `heading`. */
function tableRows(heading: string): Map<string, string> {
  const start = doc.indexOf(`\n${heading}\n`);
  expect(start, heading).toBeGreaterThanOrEqual(0);
  const rows = new Map<string, string>();
  for (const line of doc.slice(start + heading.length + 2).split("\n")) {
    if (line.startsWith("## ")) break;
    const cells = line.split(" | ");
    if (!line.startsWith("| ") || cells.length < 2 || line.startsWith("| ---")) continue;
    const [first, second] = [cells[0]?.slice(2) ?? "", cells[1] ?? ""];
    if (first !== "field" && first !== "bound") rows.set(first, second.replace(/ \|$/, ""));
  }
  return rows;
}

/**
 * The numbers a doc cell gives: "1 000 000" is one number; digits inside a
 * word or a character class (`SHA-256`, `CRC32`, `[a-z0-9]`, `IPv4`) are not.
 */
function numbersIn(text: string): Set<number> {
  const found = text.match(/(?<![\w.\-[])\d{1,3}(?: \d{3})+(?![\w\]])|(?<![\w.\-[])\d+(?![\w\]])/g);
  return new Set((found ?? []).map((n) => Number(n.replaceAll(" ", ""))).filter((n) => n > 1));
}

/** The numbers an entry stands for, as the doc writes them. */
function shownNumbers(key: Key): number[] {
  const value: unknown =
    (INPUT_BOUNDS as Record<string, unknown>)[key] ??
    (INPUT_PATTERNS as Record<string, unknown>)[key];
  const shown = DOCUMENTED[key].shown ?? ((v: number) => v);
  if (value instanceof RegExp) {
    const q = [...value.source.matchAll(/\{(\d+)(?:,(\d+))?\}/g)];
    return q
      .flatMap((m) => [m[1], m[2]])
      .filter((n) => n !== undefined)
      .map(Number);
  }
  if (Array.isArray(value)) return value.map((v) => shown(v as number));
  return [shown(value as number)];
}

const fields = tableRows("## Fields (`INVALID_ARGUMENT` beyond)");
const extAuthz = tableRows("## ext_authz `Check` and Authorize headers");
const rows = new Map([...fields, ...[...extAuthz].filter(([k]) => EXT_AUTHZ_ROWS.includes(k))]);
const keys = [...Object.keys(INPUT_BOUNDS), ...Object.keys(INPUT_PATTERNS)] as Key[];

describe("the bounds table and docs/security-bounds.md", () => {
  it("documents where every entry of the table is", () => {
    expect(Object.keys(DOCUMENTED).sort()).toEqual([...keys].sort());
  });

  it.each(keys)("gives %s its value in each of its rows", (key) => {
    for (const row of DOCUMENTED[key].rows) {
      const text = rows.get(row);
      expect(text, `no doc row ${row}`).toBeDefined();
      const inDoc = numbersIn(text as string);
      for (const n of shownNumbers(key).filter((x) => x > 1))
        expect(inDoc.has(n), `${key} = ${n} not in the row ${row}: ${text}`).toBe(true);
    }
  });

  it.each([...rows.keys()])("holds every number of the doc row %s in the table", (row) => {
    const fromTable = new Set(
      keys.filter((k) => DOCUMENTED[k].rows.includes(row)).flatMap((k) => shownNumbers(k)),
    );
    for (const n of numbersIn(rows.get(row) as string))
      expect(fromTable.has(n), `${row}: ${n} is in the doc but not in the table`).toBe(true);
  });

  it("reads the doc's numbers as a person does", () => {
    expect([...numbersIn("0 … 1 000 000 (0: the endpoint's cost)")]).toEqual([1_000_000]);
    expect([...numbersIn("a SHA-256 (64 hex or 43/44 base64) and CRC32, `[a-z0-9]`")]).toEqual([
      64, 43, 44,
    ]);
  });
});
