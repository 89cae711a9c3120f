/**
 * What `tollgate keys override` and `tollgate owners override` share: their
 * flags, the request they make of them, and how overrides and effective
 * limits are printed (keys get, owners overrides, check-config --server).
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, durationMs, timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type {
  EffectiveLimit,
  LimitOverride,
  LimitOverrideSchema,
  ScopedLimitOverride,
} from "../gen/tollgate/v1/override_pb.js";
import { formatDurationMs } from "../policy/policy-table.js";
import { table } from "./check-config-command.js";
import { parseDuration } from "./duration.js";
import type { FlagTable } from "./flags.js";

/** The flags of an override command (beside the client flags). */
export const OVERRIDE_FLAGS = {
  limit: { type: "string", arg: "NAME", help: "the policy limit to override (by its name)" },
  requests: {
    type: "string",
    arg: "N",
    help: "new requests per period (rate) or per window (quota); raise or lower",
  },
  burst: { type: "string", arg: "B", help: "rate only: the most at once (default: --requests)" },
  period: {
    type: "string",
    arg: "DURATION",
    help: "rate only: a new period, e.g. 1m (starts a fresh bucket)",
  },
  exempt: { type: "boolean", help: "not counted against the limit at all (not with --requests)" },
  expires: {
    type: "string",
    arg: "WHEN",
    help: "when the override ends: a duration from now (7d) or an ISO time",
  },
  remove: { type: "boolean", help: "remove the override of --limit instead" },
} as const satisfies FlagTable;

/** A mistake in the override flags (exit code 2). */
export class OverrideUsageError extends Error {}

/** The parsed override flags. */
export interface OverrideOptions {
  limit?: string | undefined;
  requests?: string | undefined;
  burst?: string | undefined;
  period?: string | undefined;
  exempt?: boolean | undefined;
  expires?: string | undefined;
  remove?: boolean | undefined;
}

/**
 * The LimitOverride the flags ask for, or `"remove"`; throws an
 * OverrideUsageError for a combination the server would refuse anyway.
 */
export function overrideFromFlags(
  o: OverrideOptions,
  now = Date.now(),
): MessageInitShape<typeof LimitOverrideSchema> | "remove" {
  if (!o.limit) throw new OverrideUsageError("--limit NAME is required");
  const numbers = o.requests !== undefined || o.burst !== undefined || o.period !== undefined;
  if (o.remove) {
    if (numbers || o.exempt || o.expires !== undefined)
      throw new OverrideUsageError("--remove takes only --limit");
    return "remove";
  }
  if (o.exempt && numbers)
    throw new OverrideUsageError("use --requests (with --burst, --period) or --exempt, not both");
  if (!o.exempt && o.requests === undefined)
    throw new OverrideUsageError("give --requests N (raise or lower), --exempt or --remove");
  const count = (flag: string, v: string | undefined) => {
    if (v === undefined) return 0n;
    if (!/^\d{1,16}$/.test(v)) throw new OverrideUsageError(`${flag}: not a whole number: "${v}"`);
    return BigInt(v);
  };
  let period: ReturnType<typeof durationFromMs> | undefined;
  if (o.period !== undefined) period = durationFromMs(duration("--period", o.period));
  return {
    limit: o.limit,
    exempt: o.exempt === true,
    requests: count("--requests", o.requests),
    burst: count("--burst", o.burst),
    ...(period && { period }),
    ...(o.expires !== undefined && { expireTime: timestampFromMs(expiry(o.expires, now)) }),
  };
}

/** `--expires`: a duration from now (`7d`) or an ISO time. */
function expiry(text: string, now: number): number {
  if (/^\d/.test(text) && !/[-:T]/.test(text)) return now + duration("--expires", text);
  const ms = Date.parse(text);
  if (Number.isNaN(ms))
    throw new OverrideUsageError(`--expires: not a duration (7d) nor an ISO time: "${text}"`);
  return ms;
}

function duration(flag: string, text: string): number {
  try {
    return parseDuration(text);
  } catch (err) {
    throw new OverrideUsageError(`${flag}: ${(err as Error).message}`);
  }
}

/** An override's numbers in words: `5/1h burst 5`, `5`, `exempt`. */
export function describeOverride(o: LimitOverride): string {
  if (o.exempt) return "exempt";
  const period = o.period ? `/${formatDurationMs(durationMs(o.period))}` : "";
  const burst = o.burst > 0n ? ` burst ${o.burst}` : "";
  return `${o.requests}${period}${burst}`;
}

/** When it ends, ISO, or `never`. */
function ends(o: LimitOverride): string {
  return o.expireTime ? timestampDate(o.expireTime).toISOString() : "never";
}

/** Overrides as a table: target, limit, override, expires. */
export function overrideRows(list: readonly ScopedLimitOverride[]): string[] {
  return table(
    ["target", "limit", "override", "expires"],
    list.map((s) => [
      s.target.case === "keyId" ? `key ${s.target.value}` : `owner ${s.target.value ?? ""}`,
      s.limitOverride?.limit ?? "",
      s.limitOverride ? describeOverride(s.limitOverride) : "",
      s.limitOverride ? ends(s.limitOverride) : "",
    ]),
  );
}

/** A key's effective limits as a table: limit, source, endpoints. */
export function effectiveRows(list: readonly EffectiveLimit[]): string[] {
  return table(
    ["limit", "from", "endpoints"],
    list.map((e) => [e.text, e.source, e.endpoints.join(", ")]),
  );
}

/** The precedence rule in one line, as keys get and check-config print it. */
export const PRECEDENCE =
  "precedence, per limit name: key override > owner override > endpoint > tier";
