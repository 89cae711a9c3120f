/** KeyService handlers: key management behind the management token. */
import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { SubjectKind } from "../gen/tollgate/v1/event_pb.js";
import {
  BlockSchema,
  type CreateKeyRequest,
  CreateKeyResponseSchema,
  type DeleteBlockRequest,
  DeleteBlockResponseSchema,
  type ExportKeysRequest,
  type GetKeyRequest,
  GetKeyResponseSchema,
  type GetUsageRequest,
  type ImportKeysRequest,
  type KeyService,
  type ListAlertsRequest,
  type ListBlocksRequest,
  ListBlocksResponseSchema,
  type ListEventsRequest,
  type ListKeysRequest,
  ListKeysResponseSchema,
  type RevokeKeyRequest,
  RevokeKeyResponseSchema,
  type UpdateKeyRequest,
  UpdateKeyResponseSchema,
} from "../gen/tollgate/v1/key_service_pb.js";
import type {
  DeleteLimitOverrideRequest,
  ListLimitOverridesRequest,
  SetLimitOverrideRequest,
} from "../gen/tollgate/v1/override_pb.js";
import type { KeyChangeError, KeyPatch } from "../keys/key-manager.js";
import type { KeyRecord } from "../keys/key-record.js";
import { refillTime } from "../ratelimit/rate-limiter.js";
import { normaliseIp } from "../subjects/ip-address.js";
import { subjectTag } from "../subjects/subject-tag.js";
import { INPUT_BOUNDS, INPUT_PATTERNS } from "../util/input-bounds.js";
import type { CallContext, Handlers } from "./call-context.js";
import { keyToProto, ts } from "./convert.js";
import {
  creditPlanFromProto,
  creditsChangeFromProto,
  creditsStateToProto,
  keyCreditsItem,
  readKeyCredits,
} from "./credits-convert.js";
import { apiError } from "./errors.js";
import { getUsage, listAlerts, listEvents, recordKeyAction } from "./event-handlers.js";
import { exportKeys, importKeys } from "./key-backup-handlers.js";
import { authenticateManagement } from "./management-gate.js";
import { deleteLimitOverride, listLimitOverrides, setLimitOverride } from "./override-handlers.js";
import type { ServiceDeps } from "./service-deps.js";
import type { TailHandlers } from "./tail-handlers.js";
import { Violations, validNames } from "./validation.js";

const ID = INPUT_PATTERNS.keyId;
const B = INPUT_BOUNDS;
const UPDATABLE = new Set([
  "owner",
  "tier",
  "scopes",
  "metadata",
  "expire_time",
  "ip_allow",
  "ip_deny",
  "credits",
  "credits_change",
]);

/**
 * The RPCs a read-only management token may call: they show keys (never a
 * secret or digest), usage, events, alerts, blocks, limit overrides and the live views of
 * decisions and events. ExportKeys is not here: it hands out every key's digest.
 */
export const READ_ONLY_RPCS: ReadonlySet<string> = new Set([
  "GetKey",
  "ListKeys",
  "ListBlocks",
  "ListEvents",
  "ListAlerts",
  "GetUsage",
  "ListLimitOverrides",
  "TailDecisions",
  "FollowEvents",
]);

/** KeyService's unary methods (the streaming ones are in tail-handlers.ts). */
export type KeyServiceUnaryHandlers = Omit<Handlers<typeof KeyService>, keyof TailHandlers>;

/** Builds the KeyService implementation of its unary methods. */
export function createKeyService(d: ServiceDeps): KeyServiceUnaryHandlers {
  const guard = <R, O>(rpc: string, fn: (req: R, actor: string) => Promise<O>) =>
    d.instrument(rpc, async (req: R, ctx: CallContext) =>
      fn(
        req,
        await authenticateManagement(
          d,
          ctx.requestHeader,
          rpc,
          READ_ONLY_RPCS.has(rpc) ? "read" : "change",
        ),
      ),
    );

  return {
    createKey: guard("CreateKey", async (req: CreateKeyRequest, actor) => {
      const v = new Violations();
      keyFields(d, v, req, true);
      const env = req.environment || d.keyEnvironment;
      v.pattern("environment", env, INPUT_PATTERNS.environment, "1..16 of [a-z0-9]");
      const expiresAt = futureTime(d, v, "expire_time", req.expireTime);
      const credits = req.credits && creditPlanFromProto(v, "credits", req.credits);
      v.throwIfAny();
      const { secret, record } = await d.keys.create({
        owner: req.owner,
        tier: req.tier || d.policy().defaultTier,
        scopes: req.scopes,
        metadata: req.metadata,
        ipAllow: req.ipAllow,
        ipDeny: req.ipDeny,
        environment: env,
        ...(expiresAt !== undefined && { expiresAt }),
        ...(credits && { credits }),
      });
      audit(d, "create", record.id, actor);
      return create(CreateKeyResponseSchema, { secret, key: keyToProto(record) });
    }),

    getKey: guard("GetKey", async (req: GetKeyRequest) => {
      validateId(req.id);
      const r = await d.keys.get(req.id);
      if (!r) throw apiError("KEY_NOT_FOUND");
      const key = keyToProto(r, d.clock.now());
      // The plan in force (own or tier's) with the balance the store has now.
      const credits = await readKeyCredits(d, r);
      if (credits) key.credits = creditsStateToProto(credits);
      return create(GetKeyResponseSchema, { key });
    }),

    listKeys: guard("ListKeys", async (req: ListKeysRequest) => {
      const v = new Violations();
      if (req.pageSize > B.listKeysPageMax) v.add("page_size", `must be 0..${B.listKeysPageMax}`);
      v.length("page_token", req.pageToken, 0, B.pageTokenMaxBytes);
      v.length("owner", req.owner, 0, B.ownerMaxBytes);
      let after: string | undefined;
      if (req.pageToken !== "") {
        after = Buffer.from(req.pageToken, "base64url").toString("utf8");
        if (!ID.test(after))
          v.add("page_token", "must be a token from a previous ListKeys response");
      }
      v.throwIfAny();
      const page = await d.keys.list({
        limit: req.pageSize || 50,
        includeRevoked: req.includeRevoked,
        ...(after !== undefined && { after }),
        ...(req.owner !== "" && { owner: req.owner }),
      });
      return create(ListKeysResponseSchema, {
        keys: page.records.map((r) => keyToProto(r, d.clock.now())),
        nextPageToken: page.next ? Buffer.from(page.next).toString("base64url") : "",
      });
    }),

    updateKey: guard("UpdateKey", async (req: UpdateKeyRequest, actor) => {
      const v = new Violations();
      validateId(req.id, v);
      const paths = req.updateMask?.paths ?? [];
      if (paths.length === 0) v.add("update_mask", "must name at least one field");
      for (const [i, p] of paths.entries()) {
        // The path itself is not echoed: it is caller input.
        if (!UPDATABLE.has(p))
          v.add(`update_mask.paths[${i}]`, `must be one of: ${[...UPDATABLE].join(", ")}`);
      }
      keyFields(d, v, req, paths.includes("owner"), paths);
      const patch: KeyPatch = {};
      if (paths.includes("owner")) patch.owner = req.owner;
      if (paths.includes("tier")) patch.tier = req.tier || d.policy().defaultTier;
      if (paths.includes("scopes")) patch.scopes = req.scopes;
      if (paths.includes("metadata")) patch.metadata = req.metadata;
      if (paths.includes("ip_allow")) patch.ipAllow = req.ipAllow;
      if (paths.includes("ip_deny")) patch.ipDeny = req.ipDeny;
      if (paths.includes("expire_time"))
        patch.expiresAt = futureTime(d, v, "expire_time", req.expireTime) ?? null;
      if (paths.includes("credits"))
        patch.credits = req.credits
          ? (creditPlanFromProto(v, "credits", req.credits) ?? null)
          : null;
      const change = paths.includes("credits_change")
        ? creditsChangeFromProto(v, "credits_change", req.creditsChange)
        : undefined;
      v.throwIfAny();
      // A balance change alone leaves the record as it is (no new version).
      const fields = paths.some((p) => p !== "credits_change");
      const r = fields ? unwrap(await d.keys.update(req.id, patch)) : await changeable(d, req.id);
      if (fields) audit(d, "update", r.id, actor);
      const key = keyToProto(r, d.clock.now());
      if (change) {
        const found = keyCreditsItem(d, r);
        if (!found)
          Violations.fail("credits_change", "the key has no credit plan (its own or its tier's)");
        const after = await d.rateStore.adjustCredits(found.item, change);
        audit(d, "update", r.id, actor, {
          credits: `${change.kind === "set" ? "set" : "top_up"} ${change.amount} → ${after.balance}`,
        });
        key.credits = creditsStateToProto({
          plan: found.plan,
          own: r.credits !== undefined,
          balance: after.balance,
          ...(found.plan.refill !== "none" && {
            nextRefillAt: refillTime(d.clock.now(), after.resetMs),
          }),
        });
      } else if (paths.includes("credits")) {
        const credits = await readKeyCredits(d, r);
        if (credits) key.credits = creditsStateToProto(credits);
      }
      return create(UpdateKeyResponseSchema, { key });
    }),

    listBlocks: guard("ListBlocks", async (req: ListBlocksRequest) => {
      const v = new Violations();
      if (req.pageSize > B.listBlocksPageMax)
        v.add("page_size", `must be 0..${B.listBlocksPageMax}`);
      v.throwIfAny();
      const blocks = await d.rateStore.listBlocks(req.pageSize || 100);
      return create(ListBlocksResponseSchema, {
        blocks: blocks.map((b) => {
          const { kind, subject } = fromTag(b.tag);
          return create(BlockSchema, {
            subjectKind: kind,
            subject,
            endTime: ts(b.until),
            level: b.level,
          });
        }),
      });
    }),

    deleteBlock: guard("DeleteBlock", async (req: DeleteBlockRequest, actor) => {
      const v = new Violations();
      v.length("subject", req.subject, 1, B.subjectMaxBytes);
      const kind =
        req.subjectKind === SubjectKind.UNSPECIFIED ? SubjectKind.CALLER : req.subjectKind;
      if (kind === SubjectKind.OWNER) v.add("subject_kind", "must be KEY, IP or CALLER");
      let subject = req.subject;
      if (kind === SubjectKind.IP && v.ok) {
        const ip = normaliseIp(req.subject);
        if (!ip) v.add("subject", "must be an IPv4 or IPv6 address");
        else subject = ip.address;
      }
      v.throwIfAny();
      const tag = subjectTag(
        kind === SubjectKind.KEY ? "key" : kind === SubjectKind.IP ? "ip" : "subject",
        subject,
      );
      const lifted = await d.blocks.lift(tag);
      d.log.info({ audit: "unblock", kind: SubjectKind[kind], actor, lifted }, "block lifted");
      return create(DeleteBlockResponseSchema, { lifted });
    }),

    listEvents: guard("ListEvents", (req: ListEventsRequest) => listEvents(d, req)),
    listAlerts: guard("ListAlerts", (req: ListAlertsRequest) => listAlerts(d, req)),
    getUsage: guard("GetUsage", (req: GetUsageRequest) => getUsage(d, req)),
    exportKeys: guard("ExportKeys", (req: ExportKeysRequest, actor) => exportKeys(d, req, actor)),
    importKeys: guard("ImportKeys", (req: ImportKeysRequest, actor) => importKeys(d, req, actor)),
    setLimitOverride: guard("SetLimitOverride", (req: SetLimitOverrideRequest, actor) =>
      setLimitOverride(d, req, actor),
    ),
    deleteLimitOverride: guard("DeleteLimitOverride", (req: DeleteLimitOverrideRequest, actor) =>
      deleteLimitOverride(d, req, actor),
    ),
    listLimitOverrides: guard("ListLimitOverrides", (req: ListLimitOverridesRequest) =>
      listLimitOverrides(d, req),
    ),

    revokeKey: guard("RevokeKey", async (req: RevokeKeyRequest, actor) => {
      const v = new Violations();
      validateId(req.id, v);
      v.length("reason", req.reason, 0, B.revokeReasonMaxBytes);
      v.throwIfAny();
      const out = await d.keys.revoke(req.id, req.reason);
      const r = unwrap(typeof out === "string" ? out : out.record);
      // Idempotent: a key revoked before is answered as it is, with no second event.
      if (typeof out !== "string" && out.changed) {
        audit(d, "revoke", r.id, actor, r.revokeReason ? { reason: r.revokeReason } : {});
      }
      return create(RevokeKeyResponseSchema, { key: keyToProto(r, d.clock.now()) });
    }),
  };
}

function keyFields(
  d: ServiceDeps,
  v: Violations,
  req: CreateKeyRequest | UpdateKeyRequest,
  ownerRequired: boolean,
  only?: readonly string[],
): void {
  const check = (f: string) => !only || only.includes(f);
  if (check("owner")) v.length("owner", req.owner, ownerRequired ? 1 : 0, B.ownerMaxBytes);
  if (check("tier") && req.tier !== "") {
    v.length("tier", req.tier, 1, B.tierMaxBytes);
    const { tiers } = d.policy();
    if (!tiers.has(req.tier))
      v.add("tier", `must be a tier of the policy: ${validNames(tiers.keys())}`);
  }
  if (check("scopes")) v.scopes("scopes", req.scopes, B.keyScopesMax);
  if (check("metadata"))
    v.map(
      "metadata",
      req.metadata,
      B.metadataMaxEntries,
      B.metadataKeyMaxBytes,
      B.metadataValueMaxBytes,
    );
  if (check("ip_allow")) v.networks("ip_allow", req.ipAllow);
  if (check("ip_deny")) v.networks("ip_deny", req.ipDeny);
}

function futureTime(
  d: ServiceDeps,
  v: Violations,
  field: string,
  t: Timestamp | undefined,
): number | undefined {
  if (!t) return undefined;
  const ms = timestampMs(t);
  if (!Number.isFinite(ms) || ms <= d.clock.now()) v.add(field, "must be in the future");
  else if (ms > Date.UTC(B.maxYear, 0)) v.add(field, `must be before year ${B.maxYear}`);
  return ms;
}

function validateId(id: string, v?: Violations): void {
  const own = v ?? new Violations();
  own.length("id", id, 1, B.keyIdMaxBytes);
  if (Buffer.byteLength(id) <= B.keyIdMaxBytes && id !== "")
    own.pattern("id", id, ID, "a key id (key_ + 16 base62)");
  if (!v) own.throwIfAny();
}

/** A key whose balance may change: it exists and is not revoked. */
async function changeable(d: ServiceDeps, id: string): Promise<KeyRecord> {
  const r = await d.keys.get(id);
  if (!r) throw apiError("KEY_NOT_FOUND");
  if (r.status === "revoked") throw apiError("KEY_REVOKED");
  return r;
}

/** A key change's record, or the API error its failure is. */
export function unwrap(r: KeyRecord | KeyChangeError): KeyRecord {
  if (r === "NOT_FOUND") throw apiError("KEY_NOT_FOUND");
  if (r === "REVOKED") throw apiError("KEY_REVOKED");
  if (r === "CONFLICT") throw apiError("CONCURRENT_UPDATE");
  if (r === "INVALID_SECRET") throw apiError("INVALID_SECRET");
  return r;
}

/** Audits a key change: a metric, an audit log line and a key event. */
export function audit(
  d: ServiceDeps,
  action: "create" | "update" | "revoke",
  keyId: string,
  actor: string,
  extra: Readonly<Record<string, string>> = {},
): void {
  d.metrics.keyActions.inc({ action });
  d.log.info({ audit: action, keyId, actor, ...extra }, `key ${action}d`);
  recordKeyAction(d, action, keyId, actor, undefined, extra);
}

function fromTag(tag: string): { kind: SubjectKind; subject: string } {
  const kind =
    tag[0] === "k" ? SubjectKind.KEY : tag[0] === "i" ? SubjectKind.IP : SubjectKind.CALLER;
  return { kind, subject: tag.slice(2) };
}
