/** Shared expectations of the service tests. */
import { readFileSync } from "node:fs";
import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "vitest";
import { BadRequestSchema } from "../../src/gen/google/rpc/error_details_pb.js";

/** The example policy shipped in the repo (endpoints with scopes, tiers free and pro). */
export const EXAMPLE_POLICY = readFileSync(
  new URL("../../examples/policy.yaml", import.meta.url),
  "utf8",
);

/** Awaits a call expected to fail; returns its ConnectError. */
export async function failure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail, it succeeded");
}

/**
 * Asserts INVALID_ARGUMENT carrying a google.rpc.BadRequest, and returns the
 * violated field names (in order).
 */
export async function violatedFields(call: Promise<unknown>): Promise<string[]> {
  const e = await failure(call);
  expect(e.code, e.message).toBe(Code.InvalidArgument);
  const details = e.findDetails(BadRequestSchema);
  expect(details).toHaveLength(1);
  return (details[0]?.fieldViolations ?? []).map((v) => v.field);
}
