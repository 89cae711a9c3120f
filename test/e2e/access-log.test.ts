/** The access log: one line per decision, carrying the caller's W3C traceparent. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AuthorizeRequestSchema,
  AuthorizeResponseSchema,
  TollgateService,
} from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { cli, curlJson, grpcUnary, pollUntil } from "../helpers/clients.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

let server: TollgateProcess;
beforeAll(async () => {
  // Every decision: this file reads allowed ones too (the default samples them).
  server = await startTollgateProcess({ TOLLGATE_ACCESS_LOG: "all" });
});
afterAll(async () => {
  await server?.stop();
});

describe("access log", () => {
  it("carries the traceparent of incoming calls, over Connect and gRPC, with decision id and latency", async () => {
    const created = await cli([
      "keys",
      "create",
      "--owner",
      "acme",
      "--json",
      "--server",
      server.url,
    ]);
    const { secret } = JSON.parse(created.stdout) as { secret: string };
    const trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    await curlJson(
      `${server.url}/tollgate.v1.TollgateService/Authorize`,
      { apiKey: secret },
      { traceparent: trace },
    );
    const trace2 = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await grpcUnary(
      `127.0.0.1:${server.port}`,
      TollgateService,
      "Authorize",
      AuthorizeRequestSchema,
      AuthorizeResponseSchema,
      { apiKey: secret },
      { traceparent: trace2 },
    );
    const has = (t: string) =>
      server.logs.some((l) => l.access === "Authorize" && l.traceparent === t);
    await pollUntil(
      async () => has(trace) && has(trace2),
      (both) => both,
      2000,
    );
    expect(has(trace)).toBe(true);
    expect(has(trace2)).toBe(true);
    const line = server.logs.find((l) => l.traceparent === trace) as Record<string, unknown>;
    expect(line).toMatchObject({ reason: "OK", allowed: true });
    expect(String(line.decisionId)).toMatch(/^[0-9a-f]{24}$/);
    expect(typeof line.latencyMs).toBe("number");
    expect(JSON.stringify(server.logs)).not.toContain(secret);
  });
});
