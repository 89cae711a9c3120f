/**
 * KeyService.ExportKeys and ImportKeys: backup, restore and migration from
 * other systems (see key-export-convert.ts for the record format and
 * keys/key-import.ts for what an import does). Behind the management token.
 */
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { create, toBinary } from "@bufbuild/protobuf";
import { KeyExportSchema } from "../gen/tollgate/v1/key_export_pb.js";
import {
  type ExportKeysRequest,
  type ExportKeysResponse,
  ExportKeysResponseSchema,
  type ImportKeysRequest,
  type ImportKeysResponse,
  ImportKeysResponseSchema,
  ImportOutcome,
  ImportViolationSchema,
  type KeyImportResult,
  KeyImportResultSchema,
} from "../gen/tollgate/v1/key_service_pb.js";
import type { ImportItem, ImportResult } from "../keys/key-import.js";
import { INPUT_BOUNDS, INPUT_PATTERNS } from "../util/input-bounds.js";
import { apiError } from "./errors.js";
import {
  type ConvertedImport,
  exportRecord,
  hasPepperDigests,
  importRecord,
} from "./key-export-convert.js";
import type { ServiceDeps } from "./service-deps.js";
import { Violations } from "./validation.js";

const ID = INPUT_PATTERNS.keyId;
/** Most records an ExportKeys page holds. */
const MAX_PAGE = INPUT_BOUNDS.exportPageMax;
/**
 * A page ends before its records' encoded size passes this: well inside
 * peers' default receive limits (≥ 1 MiB), and short to encode, so that a
 * page never holds the event loop for long while decisions wait.
 */
const PAGE_BYTES = INPUT_BOUNDS.exportPageBytes;
/** Records converted between two yields to the event loop (a few ms of work). */
const CHUNK = 25;
/** Most records one ImportKeys call takes. */
const MAX_IMPORT = INPUT_BOUNDS.importKeysMax;
/** Characters of the pepper fingerprint exchanged (as shown in the pepper refusal). */
const FINGERPRINT_CHARS = INPUT_BOUNDS.pepperFingerprintChars;
const FINGERPRINT = new RegExp(`^[0-9a-f]{${FINGERPRINT_CHARS}}$`);

const OUTCOME: Record<ImportResult["outcome"], ImportOutcome> = {
  created: ImportOutcome.CREATED,
  unchanged: ImportOutcome.UNCHANGED,
  replaced: ImportOutcome.REPLACED,
  conflict: ImportOutcome.CONFLICT,
  invalid: ImportOutcome.INVALID,
};

/** ExportKeys: one page of every key, revoked ones included, with digests. */
export async function exportKeys(
  d: ServiceDeps,
  req: ExportKeysRequest,
  actor: string,
): Promise<ExportKeysResponse> {
  const v = new Violations();
  if (req.pageSize > MAX_PAGE) v.add("page_size", `must be 0..${MAX_PAGE}`);
  v.length("page_token", req.pageToken, 0, INPUT_BOUNDS.pageTokenMaxBytes);
  let after: string | undefined;
  if (req.pageToken !== "") {
    after = Buffer.from(req.pageToken, "base64url").toString("utf8");
    if (!ID.test(after)) v.add("page_token", "must be a token from a previous ExportKeys response");
  }
  v.throwIfAny();
  const limit = req.pageSize || INPUT_BOUNDS.exportPageDefault;
  const page = await d.backupStore.list({
    limit,
    includeRevoked: true,
    ...(after !== undefined && { after }),
  });
  const keys = [];
  let bytes = 0;
  let next = page.next;
  for (const [i, r] of page.records.entries()) {
    if (i > 0 && i % CHUNK === 0) await yieldToEventLoop();
    const k = exportRecord(r);
    bytes += toBinary(KeyExportSchema, k).length;
    // Always at least one record per page, so an export always moves on.
    if (bytes > PAGE_BYTES && keys.length > 0) {
      next = keys[keys.length - 1]?.key?.id;
      break;
    }
    keys.push(k);
  }
  if (after === undefined) {
    d.log.info({ audit: "export", actor }, "key export started");
    d.metrics.keyActions.inc({ action: "export" });
  }
  d.log.debug({ audit: "export", actor, keys: keys.length }, "key export page");
  return create(ExportKeysResponseSchema, {
    keys,
    nextPageToken: next ? Buffer.from(next).toString("base64url") : "",
    pepperFingerprintPrefix: d.pepperFingerprint.slice(0, FINGERPRINT_CHARS),
  });
}

/** ImportKeys: a batch of records, each created, left unchanged, replaced, or reported. */
export async function importKeys(
  d: ServiceDeps,
  req: ImportKeysRequest,
  actor: string,
): Promise<ImportKeysResponse> {
  const v = new Violations();
  if (req.keys.length === 0 || req.keys.length > MAX_IMPORT) {
    v.add("keys", `must have 1..${MAX_IMPORT} entries`);
  }
  const fingerprint = req.pepperFingerprintPrefix;
  if (fingerprint !== "" && !FINGERPRINT.test(fingerprint)) {
    v.add("pepper_fingerprint_prefix", `must be ${FINGERPRINT_CHARS} lower-case hex characters`);
  }
  if (fingerprint === "" && req.keys.some(hasPepperDigests)) {
    v.add(
      "pepper_fingerprint_prefix",
      "is required when a record has secret_digest or grace_secret_digest",
    );
  }
  v.throwIfAny();
  if (
    req.keys.some(hasPepperDigests) &&
    fingerprint !== d.pepperFingerprint.slice(0, FINGERPRINT_CHARS)
  ) {
    throw apiError("PEPPER_MISMATCH");
  }
  const policy = d.policy();
  const context = {
    now: d.clock.now(),
    defaultTier: policy.defaultTier,
    tierExists: (t: string) => policy.tiers.has(t),
    defaultEnvironment: d.keyEnvironment,
    foreignKeyId: (digest: string) => d.importer.foreignKeyId(digest),
  };
  // Checked a chunk at a time: a 500-record batch takes tens of ms of CPU,
  // which must not stall the decisions this process serves meanwhile.
  const converted: ConvertedImport[] = [];
  for (const [i, m] of req.keys.entries()) {
    if (i > 0 && i % CHUNK === 0) await yieldToEventLoop();
    converted.push(importRecord(m, context));
  }
  const items: ImportItem[] = [];
  for (const c of converted) if ("item" in c) items.push(c.item);
  const applied = await d.importer.importBatch(items, {
    dryRun: req.dryRun,
    overwrite: req.overwrite,
  });
  let at = 0;
  const results: KeyImportResult[] = converted.map((c, index) => {
    if (!("item" in c)) {
      return create(KeyImportResultSchema, {
        index,
        keyId: c.id,
        outcome: ImportOutcome.INVALID,
        violations: c.violations.slice(0, 64).map((x) => create(ImportViolationSchema, x)),
      });
    }
    const r = applied[at++] as ImportResult;
    return create(KeyImportResultSchema, {
      index,
      keyId: r.id,
      outcome: OUTCOME[r.outcome],
      ...(r.outcome === "invalid"
        ? {
            violations: [
              create(ImportViolationSchema, {
                field: r.field ?? "",
                description: r.detail ?? "",
              }),
            ],
          }
        : { detail: r.detail ?? "" }),
    });
  });
  if (!req.dryRun) {
    // Restored keys holding limit overrides join the index ListLimitOverrides reads.
    const withOverrides = new Set(
      items.filter((it) => (it.record.overrides?.length ?? 0) > 0).map((it) => it.record.id),
    );
    for (const r of applied)
      if ((r.outcome === "created" || r.outcome === "replaced") && withOverrides.has(r.id))
        await d.overrides.store.markKey(r.id, true);
  }
  const counts: Record<string, number> = {};
  for (const r of results) {
    const name = ImportOutcome[r.outcome].toLowerCase();
    counts[name] = (counts[name] ?? 0) + 1;
  }
  if (!req.dryRun) {
    const written = (counts.created ?? 0) + (counts.replaced ?? 0);
    if (written > 0) d.metrics.keyActions.inc({ action: "import" }, written);
  }
  d.log.info(
    { audit: "import", actor, dryRun: req.dryRun, overwrite: req.overwrite, ...counts },
    req.dryRun ? "key import checked (dry run)" : "keys imported",
  );
  return create(ImportKeysResponseSchema, { results });
}
