/**
 * OpenTelemetry traces, end to end: the built server on Redis, with
 * TOLLGATE_OTLP_TRACES_URL pointing at an OTLP/HTTP receiver of this test,
 * exports a span per decision — child of the caller's traceparent — with the
 * Redis calls made while deciding as its children, and never a secret.
 * Without the setting, nothing is exported.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AuthorizeRequestSchema,
  AuthorizeResponseSchema,
  TollgateService,
} from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { cli, grpcUnary } from "../helpers/clients.js";
import { startTestRedis, type TestRedis } from "../helpers/redis-server.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

/** One span as OTLP/JSON encodes it (the fields this test reads). */
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: Record<string, unknown> }[];
}

let redis: TestRedis;
let receiver: Server;
const bodies: string[] = [];
let traced: TollgateProcess;
let untraced: TollgateProcess;
const TOKEN = "traces-test-management-token";

beforeAll(async () => {
  redis = await startTestRedis();
  receiver = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => {
      body += c;
    });
    req.on("end", () => {
      if (req.url === "/v1/traces") bodies.push(body);
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  const port = (receiver.address() as AddressInfo).port;
  const common = {
    REDIS_URL: redis.url,
    TOLLGATE_REDIS_PREFIX: `traces-${Date.now()}`,
    TOLLGATE_PEPPER: "traces-test-pepper-0123456789",
    TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
  };
  traced = await startTollgateProcess({
    ...common,
    TOLLGATE_OTLP_TRACES_URL: `http://127.0.0.1:${port}/v1/traces`,
  });
  untraced = await startTollgateProcess({
    ...common,
    TOLLGATE_REDIS_PREFIX: `${common.TOLLGATE_REDIS_PREFIX}-b`,
    // The SDK's own variable, pointing here: were an exporter built without
    // TOLLGATE_OTLP_TRACES_URL, its spans would arrive and fail the last test.
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${port}/v1/traces`,
  });
}, 60_000);

afterAll(async () => {
  await traced?.stop();
  await untraced?.stop();
  await new Promise((r) => receiver?.close(r));
  await redis?.stop();
});

/** Polls `find` until it returns a value, or fails after `timeoutMs`. */
async function eventually<T>(find: () => T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = find();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`not seen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function spans(): OtlpSpan[] {
  const out: OtlpSpan[] = [];
  for (const b of bodies) {
    const doc = JSON.parse(b) as {
      resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[];
    };
    for (const rs of doc.resourceSpans) for (const ss of rs.scopeSpans) out.push(...ss.spans);
  }
  return out;
}

function attr(s: OtlpSpan, key: string): unknown {
  const v = s.attributes.find((a) => a.key === key)?.value;
  return v && Object.values(v)[0];
}

async function mint(server: TollgateProcess): Promise<string> {
  const r = await cli(["keys", "create", "--owner", "acme", "--json", "--server", server.url], {
    TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
  });
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { secret: string }).secret;
}

describe("OpenTelemetry traces", () => {
  it("exports a span per decision under the caller's traceparent, with Redis calls as children", async () => {
    const secret = await mint(traced);
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const parentId = "00f067aa0ba902b7";
    const res = await grpcUnary(
      `127.0.0.1:${traced.port}`,
      TollgateService,
      "Authorize",
      AuthorizeRequestSchema,
      AuthorizeResponseSchema,
      { apiKey: secret },
      { traceparent: `00-${traceId}-${parentId}-01` },
    );
    expect(res.allowed).toBe(true);
    const decision = await eventually(
      () => spans().find((s) => s.traceId === traceId && s.name === "tollgate.Authorize"),
      5_000,
    );
    expect(decision.parentSpanId).toBe(parentId);
    expect(decision.kind).toBe(2); // SPAN_KIND_SERVER
    expect(attr(decision, "tollgate.reason")).toBe("OK");
    expect(attr(decision, "tollgate.allowed")).toBe(true);
    expect(attr(decision, "tollgate.key_id")).toMatch(/^key_/);
    expect(attr(decision, "tollgate.decision_id")).toBe(res.decisionId);
    // The key was not cached yet: its lookup went to Redis, a child of the decision.
    const children = await eventually(() => {
      const c = spans().filter((s) => s.parentSpanId === decision.spanId);
      return c.length > 0 ? c : undefined;
    }, 5_000);
    expect(children.every((c) => c.traceId === traceId)).toBe(true);
    expect(children.map((c) => c.name).join(",")).toMatch(/^redis keys\./);
    expect(attr(children[0] as OtlpSpan, "db.system.name")).toBe("redis");
    // Never a secret, in any exported byte.
    expect(bodies.join("\n")).not.toContain(secret);
  });

  it("starts a new trace when the caller sends none, and marks denials", async () => {
    const before = spans().length;
    await grpcUnary(
      `127.0.0.1:${traced.port}`,
      TollgateService,
      "Authorize",
      AuthorizeRequestSchema,
      AuthorizeResponseSchema,
      { apiKey: "tg_live_nope" },
    );
    const denial = await eventually(
      () =>
        spans()
          .slice(before)
          .find((s) => s.name === "tollgate.Authorize" && attr(s, "tollgate.allowed") === false),
      5_000,
    );
    expect(denial.parentSpanId ?? "").toBe("");
    expect(attr(denial, "http.response.status_code")).toBe(401);
    expect(bodies.join("\n")).not.toContain("tg_live_nope");
  });

  it("exports nothing when TOLLGATE_OTLP_TRACES_URL is not set", async () => {
    const secret = await mint(untraced);
    const traceId = "0af7651916cd43dd8448eb211c80319c";
    await grpcUnary(
      `127.0.0.1:${untraced.port}`,
      TollgateService,
      "Authorize",
      AuthorizeRequestSchema,
      AuthorizeResponseSchema,
      { apiKey: secret },
      { traceparent: `00-${traceId}-b7ad6b7169203331-01` },
    );
    // The traced server exports within its 1 s batch delay; give the other as long, twice.
    await new Promise((r) => setTimeout(r, 2500));
    expect(spans().some((s) => s.traceId === traceId)).toBe(false);
  });
});
