/**
 * The readable refusals' wording (http-fallback.ts): a misspelt method path is
 * answered with the closest method, a wrong package with the right one, and
 * nothing is suggested when nothing is close. The e2e test
 * (test/e2e/readable-refusals.test.ts) checks the answers on the wire.
 */
import { describe, expect, it } from "vitest";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { closestMethod, describeRefusal, methodPaths } from "../../src/transport/http-fallback.js";

const methods = methodPaths([TollgateService, KeyService]);

describe("closestMethod", () => {
  it.each([
    ["/tollgate.v1.TollgateService/Authorise", "/tollgate.v1.TollgateService/Authorize"],
    ["/tollgate.v1.tollgateservice/authorize", "/tollgate.v1.TollgateService/Authorize"],
    ["/tollgate.v1.KeyService/Createkey", "/tollgate.v1.KeyService/CreateKey"],
    ["/tollgate.v1.TollgateService/RotateKeys", "/tollgate.v1.TollgateService/RotateKey"],
    ["/TollgateService/Authorize", "/tollgate.v1.TollgateService/Authorize"],
    ["/v2/tollgate.v2.KeyService/ListKeys", "/tollgate.v1.KeyService/ListKeys"],
  ])("suggests for %s: %s", (path, expected) => {
    expect(closestMethod(path, methods)).toBe(expected);
  });

  it.each(["/", "/grpc.health.v1.Health/Check", "/foo.Bar/Baz", "/tollgate.v1.TollgateService/X"])(
    "suggests nothing for %s",
    (path) => {
      expect(closestMethod(path, methods)).toBeUndefined();
    },
  );
});

describe("describeRefusal", () => {
  it("names the accepted content-types on a 415, and the one refused", () => {
    const r = describeRefusal(415, { contentType: "text/plain" }, methods);
    expect(r?.code).toBe("invalid_argument");
    expect(r?.message).toContain("content-type 'text/plain' is not accepted");
    for (const t of [
      "application/json",
      "application/proto",
      "application/grpc",
      "application/grpc-web",
    ])
      expect(r?.message).toContain(t);
    expect(describeRefusal(415, {}, methods)?.message).toContain("the content-type is missing");
  });

  it("says POST on a 405", () => {
    const r = describeRefusal(
      405,
      { method: "GET", url: "/tollgate.v1.TollgateService/Authorize?x=1" },
      methods,
    );
    expect(r).toEqual({
      code: "unimplemented",
      message: "GET is not allowed on /tollgate.v1.TollgateService/Authorize: call it with POST",
    });
  });

  it("repeats no more than 128 printable characters of the request", () => {
    const r = describeRefusal(404, { url: `/${"\u0007x".repeat(500)}` }, methods);
    expect(r?.message).not.toContain("\u0007");
    expect(r?.message.length).toBeLessThan(300);
  });

  it("leaves other statuses alone", () => {
    expect(describeRefusal(400, {}, methods)).toBeUndefined();
    expect(describeRefusal(500, {}, methods)).toBeUndefined();
  });
});
