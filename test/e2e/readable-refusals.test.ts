/**
 * A request the RPC ports refuse before any handler runs gets a short
 * readable body (a Connect error, application/json) with the status it always
 * had (issue 15): a misspelt method path (404, with the closest method), a GET
 * (405, "POST"), a missing or wrong content-type (415, the accepted ones) —
 * with plain `curl` over HTTP/1.1 on both ports and h2c on the HTTP port, and
 * on the main port's h2c side (grpc-js) a 415 saying where Connect is served.
 * Connect clients read the body as the error; gRPC clients see what they saw
 * before; `buf curl` over gRPC shows field violations in the status message.
 * Built server, real curl and buf.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health } from "../../src/gen/health/v1/health_pb.js";
import { bufCurl } from "../helpers/clients.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const run = promisify(execFile);
const AUTHORIZE = "/tollgate.v1.TollgateService/Authorize";
let server: TollgateProcess;

beforeAll(async () => {
  server = await startTollgateProcess({ TOLLGATE_ACCESS_LOG: "false" });
});

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
});

/** One request with the real curl; `version` is its HTTP flag. */
async function curl(
  version: "--http1.1" | "--http2-prior-knowledge",
  url: string,
  args: string[],
): Promise<{ status: number; contentType: string; body: string }> {
  const { stdout } = await run("curl", [
    "-sS",
    "-m",
    "10",
    version,
    "-w",
    "\n%{http_code} %{content_type}",
    ...args,
    url,
  ]);
  const i = stdout.lastIndexOf("\n");
  const [status, contentType = ""] = stdout.slice(i + 1).split(" ");
  return { status: Number(status), contentType, body: stdout.slice(0, i) };
}

/** The Connect error in a refusal's body. */
const errorOf = (body: string) => JSON.parse(body) as { code: string; message: string };

const POST_JSON = ["-X", "POST", "-H", "content-type: application/json", "-d", "{}"];

describe.each([
  ["the HTTP port over HTTP/1.1", "http", "--http1.1"],
  ["the HTTP port over h2c", "http", "--http2-prior-knowledge"],
  ["the main port over HTTP/1.1", "main", "--http1.1"],
] as const)("connect-node's refusals on %s", (_name, port, version) => {
  const base = () => (port === "http" ? server.httpUrl : server.url);

  it("answers a misspelt method with 404 and the closest method", async () => {
    const r = await curl(version, `${base()}/tollgate.v1.TollgateService/Authorise`, POST_JSON);
    expect(r.status).toBe(404);
    expect(r.contentType).toBe("application/json");
    expect(errorOf(r.body)).toEqual({
      code: "unimplemented",
      message:
        "no RPC at /tollgate.v1.TollgateService/Authorise: did you mean /tollgate.v1.TollgateService/Authorize?",
    });
  });

  it("answers an unknown path with 404 and the shape of an RPC path", async () => {
    const r = await curl(version, `${base()}/v1/orders`, POST_JSON);
    expect(r.status).toBe(404);
    expect(r.contentType).toBe("application/json");
    expect(errorOf(r.body).message).toContain("RPCs are POST /package.Service/Method");
  });

  it("answers a GET with 405 and says POST", async () => {
    const r = await curl(version, `${base()}${AUTHORIZE}`, []);
    expect(r.status).toBe(405);
    expect(r.contentType).toBe("application/json");
    expect(errorOf(r.body)).toEqual({
      code: "unimplemented",
      message: `GET is not allowed on ${AUTHORIZE}: call it with POST`,
    });
  });

  it("answers a missing content-type with 415 and the accepted ones", async () => {
    const r = await curl(version, `${base()}${AUTHORIZE}`, ["-H", "content-type;", "-d", "{}"]);
    expect(r.status).toBe(415);
    expect(r.contentType).toBe("application/json");
    const e = errorOf(r.body);
    expect(e.code).toBe("invalid_argument");
    expect(e.message).toMatch(/^the content-type is missing: send application\/json/);
    for (const t of ["application/proto", "application/grpc", "application/grpc-web"])
      expect(e.message).toContain(t);
  });

  it("answers curl's default form content-type with 415, naming it", async () => {
    const r = await curl(version, `${base()}${AUTHORIZE}`, ["-d", "{}"]);
    expect(r.status).toBe(415);
    expect(r.contentType).toBe("application/json");
    expect(errorOf(r.body).message).toContain(
      "content-type 'application/x-www-form-urlencoded' is not accepted",
    );
    expect(errorOf(r.body).message).toContain("-H 'content-type: application/json'");
  });

  it("still answers a correct call", async () => {
    const r = await curl(version, `${base()}${AUTHORIZE}`, POST_JSON);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ reason: "REASON_MISSING_KEY" });
  });
});

describe("grpc-js on the main port over h2c", () => {
  it("answers a non-gRPC content-type with 415 and where Connect is served", async () => {
    const r = await curl("--http2-prior-knowledge", `${server.url}${AUTHORIZE}`, POST_JSON);
    expect(r.status).toBe(415);
    expect(r.contentType).toBe("application/json");
    const e = errorOf(r.body);
    expect(e.code).toBe("invalid_argument");
    expect(e.message).toContain("this port speaks gRPC over HTTP/2");
    expect(e.message).toContain("TOLLGATE_HTTP_ADDR");
  });
});

describe("clients", () => {
  it("a Connect client reads the 404's body as its error", async () => {
    // Health is served by grpc-js on the main port only: connect-node has no route for it.
    const health = createClient(
      Health,
      createConnectTransport({ baseUrl: server.httpUrl, httpVersion: "1.1" }),
    );
    const err = await health.check({}).catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unimplemented);
    expect((err as ConnectError).rawMessage).toBe(
      "no RPC at /grpc.health.v1.Health/Check: RPCs are POST /package.Service/Method, e.g. POST /tollgate.v1.TollgateService/Authorize",
    );
  });

  it("a gRPC client on connect-node sees the bare 404 it always saw", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.httpUrl }));
    const err = await health.check({}).catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.Unimplemented);
    expect((err as ConnectError).rawMessage).toBe("HTTP 404");
  });

  it("buf curl over gRPC shows field violations in the status message", async () => {
    const r = await bufCurl([
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "-d",
      '{"subject":"k","endpoint":"e","cost":2000000}',
      `${server.url}/tollgate.v1.TollgateService/CheckRateLimit`,
    ]);
    expect(r.code).not.toBe(0);
    const out = JSON.parse(r.stdout || r.stderr) as { code: string; message: string };
    expect(out.code).toBe("invalid_argument");
    expect(out.message).toContain("cost: must be 0..1000000");
  });
});
