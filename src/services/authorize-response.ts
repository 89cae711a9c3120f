/**
 * The AuthorizeResponse of every Authorize, built as one object literal.
 * Why not `create(AuthorizeResponseSchema, …)`: create walks the descriptor's
 * fields to fill defaults and then copies the init in, which was ~2 % of a
 * cached Authorize's CPU in the profile. The literal has the same keys in the
 * same order as create's message (test/unit/authorize-response.test.ts holds
 * it to create's output for every field, so a field added to the proto fails
 * the test until it is added here).
 */
import type { Header, Reason } from "../gen/tollgate/v1/common_pb.js";
import type { AuthorizeResponse } from "../gen/tollgate/v1/tollgate_service_pb.js";

/** The scalar and repeated fields of an AuthorizeResponse (message fields are set after). */
export interface AuthorizeResponseFields {
  allowed: boolean;
  reason: Reason;
  httpStatus: number;
  responseHeaders: Header[];
  decisionId: string;
  message: string;
  endpoint: string;
  missingScopes: string[];
  decidedLocally: boolean;
}

/** A new AuthorizeResponse with these fields and no message fields. */
export function authorizeResponse(f: AuthorizeResponseFields): AuthorizeResponse {
  return {
    $typeName: "tollgate.v1.AuthorizeResponse",
    allowed: f.allowed,
    reason: f.reason,
    httpStatus: f.httpStatus,
    responseHeaders: f.responseHeaders,
    decisionId: f.decisionId,
    message: f.message,
    endpoint: f.endpoint,
    missingScopes: f.missingScopes,
    decidedLocally: f.decidedLocally,
  };
}
