/**
 * Strict proto3 JSON on every connect-node route (Connect, gRPC-Web and gRPC
 * with a JSON codec). connect-es ignores unknown JSON fields and unknown enum
 * names by default, so `{"apiKy": …}` used to be answered MISSING_KEY and
 * `"subjectKind": "ip"` silently stored SUBJECT_KIND_UNSPECIFIED. Here every
 * JSON request must be one protobuf-es reads with `ignoreUnknownFields: false`
 * and whose enum values are all defined; anything else is INVALID_ARGUMENT with
 * a google.rpc.BadRequest violation naming the field by its proto path
 * (json-violation.ts), the same shape the handlers' own validation uses. Short
 * enum aliases (`ip`, `HIGH`) are not accepted: a violation lists the names.
 *
 * Binary protobuf is untouched: there, unknown fields are legitimately kept
 * (Envoy's newer fields are read from them) and enum numbers are the handlers'
 * to check.
 */
import {
  type DescMessage,
  type DescService,
  fromJsonString,
  type JsonReadOptions,
  type JsonWriteOptions,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import { Violations } from "../services/validation.js";
import { findJsonViolation } from "./json-violation.js";

/** connect-es JSON options, with the text decoder its JSON codec accepts. */
export type StrictJsonOptions = Partial<JsonReadOptions & JsonWriteOptions> & {
  textDecoder: { decode(input?: Uint8Array): string };
};

/**
 * Throws INVALID_ARGUMENT unless `text` is a `desc` message in proto3 JSON that
 * protobuf-es reads strictly and whose enum values are all defined. The error
 * names the first offending field (see json-violation.ts) and never quotes the
 * request: not its values, and not a JSON.parse message (which would).
 * Returns the message protobuf-es read, so a caller that parses the request
 * itself (connect-direct.ts) need not read it a second time.
 */
export function checkJsonRequest<D extends DescMessage>(desc: D, text: string): MessageShape<D> {
  let parsed: MessageShape<D> | undefined;
  try {
    parsed = fromJsonString(desc, text, { ignoreUnknownFields: false });
  } catch {
    parsed = undefined;
  }
  const refused = parsed === undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ConnectError("request is not valid JSON", Code.InvalidArgument);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json))
    throw new ConnectError("request must be a JSON object", Code.InvalidArgument);
  // The shape pass also catches what protobuf-es accepts (undefined enum
  // numbers); the value pass runs only to explain a refusal.
  const v =
    findJsonViolation(desc, json) ?? (refused ? findJsonViolation(desc, json, true) : undefined);
  if (v) Violations.fail(v.field, v.description);
  // Left: what JSON.parse hides from the walk, i.e. a key given twice.
  if (parsed === undefined)
    throw new ConnectError(
      `request is not valid proto3 JSON for ${desc.typeName} (is a key given twice?)`,
      Code.InvalidArgument,
    );
  return parsed;
}

/**
 * JSON options that make connect-es check each request of `input` with
 * checkJsonRequest. connect-es passes every JSON request body — whatever the
 * protocol, framing or compression — through its codec's text decoder right
 * before protobuf-es parses it; that is the one point that holds both the
 * bytes and the method, so the check lives in the decoder. `ignoreUnknownFields:
 * false` keeps protobuf-es strict as well, should the decoder ever be bypassed.
 */
export function strictJsonOptions(input: DescMessage): StrictJsonOptions {
  const utf8 = new TextDecoder();
  return {
    ignoreUnknownFields: false,
    textDecoder: {
      decode(bytes?: Uint8Array): string {
        const text = utf8.decode(bytes);
        checkJsonRequest(input, text);
        return text;
      },
    },
  };
}

/**
 * Registers each method of `service` on `router` with strict JSON for its
 * input type (options are per method because the decoder must know the type).
 * A method `impl` lacks answers UNIMPLEMENTED, as `router.service` does.
 */
export function routeStrictJson<S extends DescService>(
  router: ConnectRouter,
  service: S,
  impl: Partial<ServiceImpl<S>>,
): void {
  for (const method of service.methods) {
    const fn = (impl as Record<string, unknown>)[method.localName];
    const handler =
      typeof fn === "function"
        ? (req: unknown, ctx: HandlerContext) => fn.call(impl, req, endedWithReason(ctx))
        : () => {
            throw new ConnectError(
              `${service.typeName}.${method.name} is not implemented`,
              Code.Unimplemented,
            );
          };
    router.rpc(method, handler as never, { jsonOptions: strictJsonOptions(method.input) });
  }
}

/**
 * The reason every call's context is aborted with once it has ended.
 * connect-es ends each call with `context.abort()`, and an abort without a
 * reason makes Node build a new DOMException — a stack capture — per call:
 * 9 % of a cached Authorize's CPU over Connect JSON in a profile. Handlers
 * that listen on the signal see an AbortError either way.
 */
const CALL_ENDED = new DOMException("the call has ended", "AbortError");

/**
 * `ctx`, with its `abort` (connect-es's context controller, not part of the
 * public HandlerContext type) giving CALL_ENDED when called without a reason.
 * Left as it is if a connect-es version has no such method.
 */
function endedWithReason(ctx: HandlerContext): HandlerContext {
  const c = ctx as HandlerContext & { abort?: (reason?: unknown) => void };
  const abort = c.abort;
  if (typeof abort === "function") {
    c.abort = (reason?: unknown) => abort.call(c, reason ?? CALL_ENDED);
  }
  return ctx;
}
