/**
 * Input validation with declared bounds. A Violations collector gathers every
 * problem of a request, then fails the call with INVALID_ARGUMENT carrying a
 * google.rpc.BadRequest with one FieldViolation per problem. Descriptions name
 * the field and the bound, never the offending value (it may be a secret).
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequest_FieldViolationSchema,
  BadRequestSchema,
} from "../gen/google/rpc/error_details_pb.js";
import { parseCidr } from "../subjects/ip-address.js";
import { INPUT_BOUNDS, INPUT_PATTERNS } from "../util/input-bounds.js";

/** How many valid names a violation lists at most. */
const MAX_LISTED = INPUT_BOUNDS.listedNamesMax;

/**
 * The valid names, for a message: `free, pro`, or the first MAX_LISTED and
 * how many there are in all. Names of the policy, never of the request.
 */
export function validNames(names: Iterable<string>): string {
  const all = [...names];
  if (all.length === 0) return "(none)";
  const shown = all.slice(0, MAX_LISTED).join(", ");
  return all.length > MAX_LISTED ? `${shown}, … (${all.length} in all)` : shown;
}

const SCOPE = INPUT_PATTERNS.scope;

/** Collects field violations of one request. */
export class Violations {
  private readonly list: { field: string; description: string }[] = [];

  /** Records a violation. */
  add(field: string, description: string): void {
    this.list.push({ field, description });
  }

  /** UTF-8 byte length within [min, max]. */
  length(field: string, value: string, min: number, max: number): void {
    // A UTF-16 unit is 1..3 UTF-8 bytes: most values are within bounds by their length alone.
    if (value.length >= min && value.length * 3 <= max) return;
    const n = Buffer.byteLength(value);
    if (n < min || n > max) {
      this.add(field, min > 0 ? `must be ${min}..${max} bytes` : `must be at most ${max} bytes`);
    }
  }

  /** Matches a pattern (checked only after a length check passes). */
  pattern(field: string, value: string, re: RegExp, what: string): void {
    if (!re.test(value)) this.add(field, `must be ${what}`);
  }

  /** List length at most `max`, each entry checked by `each`. */
  list_<T>(
    field: string,
    values: readonly T[],
    max: number,
    each?: (v: T, f: string) => void,
  ): void {
    if (values.length > max) {
      this.add(field, `must have at most ${max} entries`);
      return;
    }
    if (!each) return;
    for (const [i, v] of values.entries()) each(v, `${field}[${i}]`);
  }

  /**
   * Map size and entry bounds. Entries are named by position, never by key:
   * a key is caller input and may be a secret.
   */
  map(
    field: string,
    m: Record<string, string>,
    maxEntries: number,
    maxKey: number,
    maxValue: number,
  ): void {
    const entries = Object.entries(m);
    if (entries.length > maxEntries) {
      this.add(field, `must have at most ${maxEntries} entries`);
      return;
    }
    for (const [i, [k, v]] of entries.entries()) {
      if (Buffer.byteLength(k) === 0 || Buffer.byteLength(k) > maxKey) {
        this.add(`${field}[#${i}]`, `keys must be 1..${maxKey} bytes`);
      }
      if (Buffer.byteLength(v) > maxValue)
        this.add(`${field}[#${i}]`, `values must be at most ${maxValue} bytes`);
    }
  }

  /** Scopes list: at most `max`, each 1..128 of [A-Za-z0-9:._/*-]. */
  scopes(field: string, scopes: readonly string[], max: number): void {
    if (scopes.length > max) {
      this.add(field, `must have at most ${max} entries`);
      return;
    }
    // The field name of an entry is built only for a violation (this runs on every Authorize).
    for (let i = 0; i < scopes.length; i++) {
      if (!SCOPE.test(scopes[i] as string))
        this.add(`${field}[${i}]`, "must be 1..128 of [A-Za-z0-9:._/*-]");
    }
  }

  /** CIDR list: at most ipListMax valid IPv4/IPv6 networks or addresses of cidrMaxBytes. */
  networks(field: string, nets: readonly string[]): void {
    const { ipListMax, cidrMaxBytes } = INPUT_BOUNDS;
    this.list_(field, nets, ipListMax, (n, f) => {
      const p =
        Buffer.byteLength(n) > cidrMaxBytes
          ? { error: `at most ${cidrMaxBytes} bytes` }
          : parseCidr(n);
      if ("error" in p) this.add(f, `must be an IPv4/IPv6 address or CIDR (${p.error})`);
    });
  }

  /** Every violation recorded so far, in order. */
  get all(): readonly { field: string; description: string }[] {
    return this.list;
  }

  /** True if nothing was recorded. */
  get ok(): boolean {
    return this.list.length === 0;
  }

  /** Fails the call at once with INVALID_ARGUMENT for one field. */
  static fail(field: string, description: string): never {
    const v = new Violations();
    v.add(field, description);
    throw v.toError();
  }

  /** Throws INVALID_ARGUMENT with every violation, if any. */
  throwIfAny(): void {
    if (!this.ok) throw this.toError();
  }

  /** INVALID_ARGUMENT carrying a google.rpc.BadRequest with every violation. */
  private toError(): ConnectError {
    const summary = this.list.map((v) => `${v.field}: ${v.description}`).join("; ");
    return new ConnectError(`invalid request: ${summary}`, Code.InvalidArgument, undefined, [
      {
        desc: BadRequestSchema,
        value: {
          fieldViolations: this.list.map((v) => create(BadRequest_FieldViolationSchema, v)),
        },
      },
    ]);
  }
}
