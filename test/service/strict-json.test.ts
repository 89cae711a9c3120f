/**
 * The real handlers behind routeStrictJson, through Connect's in-memory router
 * transport: over JSON an enum number the schema does not define is refused
 * before the handler runs, naming the field; over binary the same request
 * reaches the handler as before (whose own validation then judges it); a
 * method the implementation lacks answers UNIMPLEMENTED.
 */
import { Code, createClient, createRouterTransport } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadRequestSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { Severity, type SubjectKind } from "../../src/gen/tollgate/v1/event_pb.js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { createKeyService } from "../../src/services/key-service.js";
import { createTollgateService } from "../../src/services/tollgate-service.js";
import { routeStrictJson } from "../../src/transport/strict-json.js";
import { createServiceHarness, type ServiceHarness } from "../helpers/service-deps.js";
import { EXAMPLE_POLICY, failure } from "./support.js";

let h: ServiceHarness;

beforeAll(async () => {
  h = await createServiceHarness({ policyYaml: EXAMPLE_POLICY });
});
afterAll(() => h.close());

/** TollgateService and KeyService routed strictly, over JSON or binary. */
function clients(useBinaryFormat: boolean) {
  const transport = createRouterTransport(
    (router) => {
      routeStrictJson(router, TollgateService, createTollgateService(h.deps));
      routeStrictJson(router, KeyService, createKeyService(h.deps));
    },
    { transport: { useBinaryFormat } },
  );
  return {
    tollgate: createClient(TollgateService, transport),
    keys: createClient(KeyService, transport),
  };
}

const event = (severity: Severity) => ({
  events: [{ id: `strict-${Math.random()}`, customType: "strict.test", subject: "s", severity }],
});

describe("routeStrictJson", () => {
  it("refuses an undefined enum number in JSON, naming the field and the accepted names", async () => {
    const e = await failure(clients(false).tollgate.recordEvent(event(99 as Severity)));
    expect(e.code).toBe(Code.InvalidArgument);
    const [v] = e.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations);
    expect(v?.field).toBe("events[0].severity");
    expect(v?.description).toContain("SEVERITY_HIGH");
    const k = await failure(
      clients(false).keys.listEvents({ subjectKind: 9 as SubjectKind }, h.auth),
    );
    expect(k.findDetails(BadRequestSchema)[0]?.fieldViolations[0]?.field).toBe("subject_kind");
  });

  it("leaves binary as it was: the handler's own validation sees the number", async () => {
    const e = await failure(clients(true).tollgate.recordEvent(event(99 as Severity)));
    expect(e.code).toBe(Code.InvalidArgument);
    const [v] = e.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations);
    expect(v).toMatchObject({
      field: "events[0].severity",
      description: "must be a known Severity",
    });
  });

  it("serves well-formed JSON and binary requests unchanged", async () => {
    for (const binary of [false, true]) {
      const r = await clients(binary).tollgate.recordEvent(event(Severity.HIGH));
      expect(r.acceptedIds).toHaveLength(1);
      const k = await clients(binary).keys.createKey({ owner: "strict" }, h.auth);
      expect(k.secret).toMatch(/^tg_/);
    }
  });

  it("answers UNIMPLEMENTED for a method the implementation lacks", async () => {
    const transport = createRouterTransport(
      (router) => routeStrictJson(router, TollgateService, {}),
      { transport: { useBinaryFormat: false } },
    );
    const e = await failure(createClient(TollgateService, transport).authorize({}));
    expect(e.code).toBe(Code.Unimplemented);
    expect(e.rawMessage).toBe("tollgate.v1.TollgateService.Authorize is not implemented");
  });
});
