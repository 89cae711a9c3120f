/**
 * The direct Connect JSON path (src/transport/connect-direct.ts), started
 * in-process on both ports with handlers the test controls. The trick: the
 * same request with an extra `accept-encoding: identity` is one the path
 * leaves to connect-node, so each case sends it both ways and compares the
 * answers — status, content-type, body JSON — over HTTP/1.1 on the main port
 * and HTTP/1.1 and h2c on the HTTP port. Every case also checks which engine
 * wrote the answer (and, when a handler ran, which one called it), since both
 * give the same answers by design and a test could otherwise pass with the
 * path not installed at all.
 */
import { ServerResponse } from "node:http";
import { constants, Http2ServerResponse } from "node:http2";
import { gzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BadRequestSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import {
  AuthorizeRequestSchema,
  AuthorizeResponseSchema,
  TollgateService,
} from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import type { CallContext, Handlers } from "../../src/services/call-context.js";
import { grpcFrame } from "../security/support.js";
import {
  exchange,
  type HttpAnswer,
  type RawRequest,
  send,
  startBothPorts,
  type Wire,
} from "./connect-direct-support.js";
import { sleep } from "./grpc-direct-support.js";

const AUTHORIZE = "/tollgate.v1.TollgateService/Authorize";
const RECORD_EVENT = "/tollgate.v1.TollgateService/RecordEvent";
const MAX_MESSAGE_BYTES = 4096;
/** The header that makes a request one for connect-node (the path never serves `accept-encoding`). */
const TO_CONNECT_NODE = { "accept-encoding": "identity" };

type Engine = "direct" | "connect-node" | "other";
type AuthorizeHandler = Handlers<typeof TollgateService>["authorize"];

/**
 * The engine on the current stack: the direct path runs handlers and writes
 * answers synchronously from its request listeners (connect-direct.ts on the
 * stack); connect-node from its own handler (routeStrictJson's wrapper in
 * strict-json.ts, its universal handler, or the readable refusals around it).
 */
function engineOnStack(): Engine {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 40;
  const stack = new Error().stack ?? "";
  Error.stackTraceLimit = limit;
  if (stack.includes("transport/connect-direct.")) return "direct";
  if (/transport\/strict-json\.|@connectrpc\/connect-node|transport\/http-fallback\./.test(stack))
    return "connect-node";
  return "other";
}

/** The engine that called the last handler, and the one that wrote the last response head. */
let servedBy: Engine | undefined;
let wroteBy: Engine | undefined;

/**
 * Records who writes each response head, then writes it as before: an
 * observer on Node's own response classes, which both engines answer through
 * (refusals run no handler, so only this says which engine refused).
 */
function observeWriteHead(proto: { writeHead: (...args: never[]) => unknown }): () => void {
  const original = proto.writeHead;
  proto.writeHead = function (this: unknown, ...args: never[]) {
    wroteBy = engineOnStack();
    return original.apply(this, args);
  };
  return () => {
    proto.writeHead = original;
  };
}

/** The default Authorize: reports, as JSON in `message`, the headers named in required_scopes. */
const reportHeaders: AuthorizeHandler = async (req, ctx) => ({
  allowed: true,
  httpStatus: 200,
  endpoint: req.path,
  message: JSON.stringify(
    Object.fromEntries(req.requiredScopes.map((n) => [n, ctx.requestHeader.get(n)])),
  ),
});

let authorize: AuthorizeHandler = reportHeaders;
let lastCtx: CallContext | undefined;
const handlers: Handlers<typeof TollgateService> = {
  authorize: (req, ctx) => {
    servedBy = engineOnStack();
    lastCtx = ctx;
    return authorize(req, ctx);
  },
  checkRateLimit: async (req) => ({ allowed: true, decisionId: req.subject }),
  recordEvent: async (req) => {
    servedBy = engineOnStack();
    return { acceptedIds: req.events.map((e) => e.id) };
  },
  rotateKey: async () => {
    throw new ConnectError("not in this test", Code.Unimplemented);
  },
  reportUsage: async () => ({}),
};

/** A promise and its resolver, for handlers the test holds and releases. */
function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => {
    open = r;
  });
  return { promise, open };
}

/** Resolves "aborted" when `signal` aborts, "not aborted" after `ms`. */
function abortedWithin(signal: AbortSignal, ms: number): Promise<"aborted" | "not aborted"> {
  if (signal.aborted) return Promise.resolve("aborted");
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve("not aborted"), ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve("aborted");
    });
  });
}

/** A Connect unary JSON POST of `body` to `path`, with a content-length that matches it. */
function jsonPost(path: string, body: string, headers: RawRequest["headers"] = {}): RawRequest {
  return {
    path,
    headers: {
      "content-type": "application/json",
      "content-length": String(Buffer.byteLength(body)),
      ...headers,
    },
    body,
  };
}

/** One answer and the engines seen while it was produced. */
interface Seen {
  answer: HttpAnswer;
  json: unknown;
  wroteBy: Engine | undefined;
  servedBy: Engine | undefined;
}

async function sendSeen(wire: Wire, port: number, r: RawRequest): Promise<Seen> {
  servedBy = undefined;
  wroteBy = undefined;
  const answer = await exchange(wire, port, r);
  const text = answer.body.toString("utf8");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { answer, json, wroteBy, servedBy };
}

/** What must be equal between the two engines' answers: status, content-type, body JSON. */
const comparable = (s: Seen) => ({
  status: s.answer.status,
  contentType: s.answer.headers["content-type"],
  json: s.json,
});

type Servers = Awaited<ReturnType<typeof startBothPorts>>;
/** The three ways in: the main port's HTTP/1.1 side and both protocols of the HTTP port. */
const WIRES: { name: string; wire: Wire; portOf(s: Servers): number }[] = [
  { name: "HTTP/1.1 on the main port", wire: "http1", portOf: (s) => s.port },
  { name: "HTTP/1.1 on the HTTP port", wire: "http1", portOf: (s) => s.httpPort },
  { name: "h2c on the HTTP port", wire: "h2c", portOf: (s) => s.httpPort },
];

let mainServers: Servers;
const restores: (() => void)[] = [];
beforeAll(async () => {
  restores.push(observeWriteHead(ServerResponse.prototype as never));
  restores.push(observeWriteHead(Http2ServerResponse.prototype as never));
  mainServers = await startBothPorts(TollgateService, handlers, {
    maxMessageBytes: MAX_MESSAGE_BYTES,
  });
});
afterAll(async () => {
  await mainServers?.close(1000);
  for (const r of restores) r();
});
afterEach(() => {
  authorize = reportHeaders;
  lastCtx = undefined;
});

describe.each(WIRES)("Connect JSON over $name", ({ wire, portOf }) => {
  const port = () => portOf(mainServers);
  /** `r` as sent (the direct path) and with accept-encoding (connect-node); each engine checked. */
  async function bothWays(r: RawRequest, handlerRuns: boolean) {
    const direct = await sendSeen(wire, port(), r);
    const viaNode = await sendSeen(wire, port(), {
      ...r,
      headers: { ...r.headers, ...TO_CONNECT_NODE },
    });
    expect([direct.wroteBy, viaNode.wroteBy]).toEqual(["direct", "connect-node"]);
    expect([direct.servedBy, viaNode.servedBy]).toEqual(
      handlerRuns ? ["direct", "connect-node"] : [undefined, undefined],
    );
    return { direct, viaNode };
  }

  describe("a successful call", () => {
    it("gets the same status and JSON body as from connect-node", async () => {
      const body = JSON.stringify({ path: "/orders", requiredScopes: [], cost: 3 });
      const { direct, viaNode } = await bothWays(jsonPost(AUTHORIZE, body), true);
      expect(direct.answer.status).toBe(200);
      expect(direct.answer.headers["content-type"]).toBe("application/json");
      expect(direct.json).toEqual({
        allowed: true,
        httpStatus: 200,
        endpoint: "/orders",
        message: "{}",
      });
      expect(comparable(direct)).toEqual(comparable(viaNode));
    });

    it("`connect-protocol-version: 1` and an empty object are served directly too", async () => {
      const { direct, viaNode } = await bothWays(
        jsonPost(AUTHORIZE, "{}", { "connect-protocol-version": "1" }),
        true,
      );
      expect(direct.json).toEqual({ allowed: true, httpStatus: 200, message: "{}" });
      expect(comparable(direct)).toEqual(comparable(viaNode));
    });

    it("passes the same request headers to ctx.requestHeader (repeated joined with ', ')", async () => {
      const names = [
        "traceparent",
        "X-Custom",
        "x-multi",
        "set-cookie",
        "cookie",
        "authorization",
        "x-absent",
        "content-type",
        "user-agent",
      ];
      const r = jsonPost(AUTHORIZE, JSON.stringify({ requiredScopes: names }), {
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "x-custom": "custom value",
        "x-multi": ["one", "two"],
        "set-cookie": ["a=1", "b=2"],
        cookie: ["c=3", "d=4"],
        authorization: "Bearer token-1",
        "user-agent": "raw-test/1",
      });
      const { direct, viaNode } = await bothWays(r, true);
      const seen = (s: Seen) => JSON.parse((s.json as { message: string }).message);
      expect(seen(direct)).toMatchObject({
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "X-Custom": "custom value",
        "x-multi": "one, two",
        "set-cookie": "a=1, b=2",
        authorization: "Bearer token-1",
        "x-absent": null,
        "content-type": "application/json",
        "user-agent": "raw-test/1",
      });
      expect(seen(direct)).toEqual(seen(viaNode));
    });

    it("no pseudo-header is a request header (connect-node exposes none either)", async () => {
      const names = [":path", ":method", ":authority", ":scheme"];
      const direct = await sendSeen(
        wire,
        port(),
        jsonPost(AUTHORIZE, JSON.stringify({ requiredScopes: names })),
      );
      expect(direct.servedBy).toBe("direct");
      expect(JSON.parse((direct.json as { message: string }).message)).toEqual({
        ":path": null,
        ":method": null,
        ":authority": null,
        ":scheme": null,
      });
    });
  });

  describe("strict JSON refusals, as connect-node gives them", () => {
    const cases: [string, string, string][] = [
      ["an unknown field", AUTHORIZE, '{"path":"/a","apiKy":"tg_x"}'],
      ["an undefined enum name", RECORD_EVENT, '{"events":[{"id":"e1","severity":"LOUD"}]}'],
      ["an undefined enum number", RECORD_EVENT, '{"events":[{"id":"e1","severity":99}]}'],
      ["a key given twice", AUTHORIZE, '{"path":"/a","path":"/b"}'],
      ["invalid JSON", AUTHORIZE, '{"path":'],
      ["an array", AUTHORIZE, "[1,2]"],
      ["a string", AUTHORIZE, '"just text"'],
      ["null", AUTHORIZE, "null"],
      ["a bad value", AUTHORIZE, '{"cost":"secret-value-9f3a"}'],
      ["a bad nested value", RECORD_EVENT, '{"events":[{"time":"secret-value-9f3a"}]}'],
      ["an empty body", AUTHORIZE, ""],
    ];
    for (const [what, path, body] of cases) {
      it(`${what}: the same INVALID_ARGUMENT, never quoting the value`, async () => {
        const { direct, viaNode } = await bothWays(jsonPost(path, body), false);
        expect(direct.answer.status).toBe(400);
        expect((direct.json as { code: string }).code).toBe("invalid_argument");
        expect(direct.answer.body.toString()).not.toContain("secret-value");
        expect(comparable(direct)).toEqual(comparable(viaNode));
      });
    }

    it("a valid RecordEvent with enum names is accepted both ways", async () => {
      const body = '{"events":[{"id":"e1","customType":"x","severity":"SEVERITY_HIGH"}]}';
      const { direct, viaNode } = await bothWays(jsonPost(RECORD_EVENT, body), true);
      expect(direct.json).toEqual({ acceptedIds: ["e1"] });
      expect(comparable(direct)).toEqual(comparable(viaNode));
    });
  });

  describe("handler errors, as connect-node gives them", () => {
    it("a ConnectError with BadRequest details and metadata: status, error JSON, headers", async () => {
      authorize = async () => {
        throw new ConnectError(
          "clé refusée — ☃ 100% «ok»?",
          Code.FailedPrecondition,
          { "x-error-meta": "kept" },
          [
            {
              desc: BadRequestSchema,
              value: { fieldViolations: [{ field: "api_key", description: "trop court ✂" }] },
            },
          ],
        );
      };
      const { direct, viaNode } = await bothWays(jsonPost(AUTHORIZE, "{}"), true);
      expect(direct.answer.status).toBe(400);
      expect(direct.json).toEqual({
        code: "failed_precondition",
        message: "clé refusée — ☃ 100% «ok»?",
        details: [
          {
            type: "google.rpc.BadRequest",
            value: expect.any(String),
            debug: { fieldViolations: [{ field: "api_key", description: "trop court ✂" }] },
          },
        ],
      });
      expect(comparable(direct)).toEqual(comparable(viaNode));
      expect(direct.answer.headers["x-error-meta"]).toBe("kept");
      expect(viaNode.answer.headers["x-error-meta"]).toBe("kept");
    });

    it("a plain Error is INTERNAL 'internal error', its message kept back", async () => {
      authorize = async () => {
        throw new Error("secret detail");
      };
      const { direct, viaNode } = await bothWays(jsonPost(AUTHORIZE, "{}"), true);
      expect(direct.answer.status).toBe(500);
      expect(direct.json).toEqual({ code: "internal", message: "internal error" });
      expect(comparable(direct)).toEqual(comparable(viaNode));
    });

    it("a handler that throws synchronously is answered the same", async () => {
      authorize = () => {
        throw new ConnectError("no", Code.PermissionDenied);
      };
      const { direct, viaNode } = await bothWays(jsonPost(AUTHORIZE, "{}"), true);
      expect(direct.answer.status).toBe(403);
      expect(comparable(direct)).toEqual(comparable(viaNode));
    });
  });

  describe("framing", () => {
    // Node's HTTP/1.1 parser and nghttp2 hold a request to its content-length
    // before either engine reads a byte, so a body that does not match it
    // never reaches one: both are refused alike, by the transport.
    const body = JSON.stringify({ path: "/framing" });
    const promising = (length: number): RawRequest => ({
      ...jsonPost(AUTHORIZE, body, { "content-length": String(length) }),
      halfClose: true,
    });
    for (const [what, length] of [
      ["a content-length larger than the body sent", body.length + 3],
      ["a content-length smaller than the body sent", body.length - 3],
    ] as const) {
      it(`${what}: refused the same way by the transport, no handler run`, async () => {
        const direct = await sendSeen(wire, port(), promising(length));
        const viaNode = await sendSeen(wire, port(), {
          ...promising(length),
          headers: { ...promising(length).headers, ...TO_CONNECT_NODE },
        });
        for (const seen of [direct, viaNode]) {
          expect(seen.servedBy).toBeUndefined();
          if (wire === "h2c") {
            // Reset by nghttp2: the request never reached the compat layer.
            expect(seen.wroteBy).toBeUndefined();
            expect(seen.answer.status).toBe(0);
            expect(seen.answer.rstCode).toBe(constants.NGHTTP2_PROTOCOL_ERROR);
          } else {
            // The parser's error is answered (and the socket destroyed) by
            // http1-guard.ts before either engine's own answer is written.
            expect(seen.answer.status).toBe(400);
            expect(seen.answer.headers.connection).toBe("close");
            expect(seen.answer.body.length).toBe(0);
          }
        }
      });
    }

    it("a content-length of exactly maxMessageBytes is served directly", async () => {
      const exact = body.padEnd(MAX_MESSAGE_BYTES, " ");
      const { direct, viaNode } = await bothWays(jsonPost(AUTHORIZE, exact), true);
      expect((direct.json as { endpoint: string }).endpoint).toBe("/framing");
      expect(comparable(direct)).toEqual(comparable(viaNode));
    });

    it("a content-length over maxMessageBytes goes to connect-node: resource_exhausted", async () => {
      const over = body.padEnd(MAX_MESSAGE_BYTES + 1, " ");
      const seen = await sendSeen(wire, port(), jsonPost(AUTHORIZE, over));
      expect(seen.wroteBy).toBe("connect-node");
      expect(seen.servedBy).toBeUndefined();
      expect(seen.answer.status).toBe(429);
      expect(seen.json).toMatchObject({ code: "resource_exhausted" });
    });
  });

  describe("what connect-node still serves", () => {
    const path = "/fallthrough";
    const authorizeJson = JSON.stringify({ path });

    it("a Connect GET: 405 with the readable refusal (Authorize has side effects)", async () => {
      const message = encodeURIComponent(authorizeJson);
      const seen = await sendSeen(wire, port(), {
        method: "GET",
        path: `${AUTHORIZE}?connect=v1&encoding=json&message=${message}`,
        headers: {},
      });
      expect(seen.wroteBy).toBe("connect-node");
      expect(seen.servedBy).toBeUndefined();
      expect(seen.answer.status).toBe(405);
      expect(seen.json).toMatchObject({ code: "unimplemented" });
      expect((seen.json as { message: string }).message).toContain("call it with POST");
    });

    it("application/proto is answered in binary", async () => {
      const bytes = Buffer.from(
        toBinary(AuthorizeRequestSchema, create(AuthorizeRequestSchema, { path })),
      );
      const seen = await sendSeen(wire, port(), {
        path: AUTHORIZE,
        headers: { "content-type": "application/proto", "content-length": String(bytes.length) },
        body: bytes,
      });
      expect(seen.servedBy).toBe("connect-node");
      expect(seen.answer.status).toBe(200);
      expect(seen.answer.headers["content-type"]).toBe("application/proto");
      expect(fromBinary(AuthorizeResponseSchema, seen.answer.body).endpoint).toBe(path);
    });

    it("a gzip-compressed JSON body is answered", async () => {
      const gz = gzipSync(authorizeJson);
      const seen = await sendSeen(wire, port(), {
        path: AUTHORIZE,
        headers: {
          "content-type": "application/json",
          "content-encoding": "gzip",
          "content-length": String(gz.length),
        },
        body: gz,
      });
      expect(seen.servedBy).toBe("connect-node");
      expect(seen.answer.status).toBe(200);
      expect(seen.json).toMatchObject({ endpoint: path });
    });

    it("connect-timeout-ms: the handler sees the deadline", async () => {
      let timeout: number | undefined;
      authorize = async (req, ctx) => {
        timeout = ctx.timeoutMs();
        return { endpoint: req.path };
      };
      const seen = await sendSeen(
        wire,
        port(),
        jsonPost(AUTHORIZE, authorizeJson, { "connect-timeout-ms": "5000" }),
      );
      expect(seen.servedBy).toBe("connect-node");
      expect(seen.json).toMatchObject({ endpoint: path });
      expect(timeout).toBeGreaterThan(0);
      expect(timeout).toBeLessThanOrEqual(5000);
    });

    it("connect-protocol-version 2 is answered by connect-node, as before", async () => {
      const seen = await sendSeen(
        wire,
        port(),
        jsonPost(AUTHORIZE, authorizeJson, { "connect-protocol-version": "2" }),
      );
      expect(seen.wroteBy).toBe("connect-node");
      expect(seen.servedBy).toBe("connect-node");
      expect(seen.answer.status).toBe(200);
      expect(seen.json).toMatchObject({ endpoint: path });
    });

    it("gRPC-Web with JSON is answered in gRPC-Web framing", async () => {
      const framed = grpcFrame(Buffer.from(authorizeJson));
      const seen = await sendSeen(wire, port(), {
        path: AUTHORIZE,
        headers: {
          "content-type": "application/grpc-web+json",
          "content-length": String(framed.length),
        },
        body: framed,
      });
      expect(seen.servedBy).toBe("connect-node");
      expect(seen.answer.status).toBe(200);
      expect(seen.answer.headers["content-type"]).toBe("application/grpc-web+json");
      const b = seen.answer.body;
      const len = b.readUInt32BE(1);
      expect(JSON.parse(b.subarray(5, 5 + len).toString())).toMatchObject({ endpoint: path });
      expect(b.subarray(5 + len + 5).toString()).toContain("grpc-status: 0");
    });

    it("a content-type with parameters, or no content-length, is answered", async () => {
      const typed = await sendSeen(wire, port(), {
        ...jsonPost(AUTHORIZE, authorizeJson),
        headers: {
          "content-type": "application/json; charset=utf-8",
          "content-length": String(authorizeJson.length),
        },
      });
      expect(typed.servedBy).toBe("connect-node");
      expect(typed.json).toMatchObject({ endpoint: path });
      // HTTP/1.1 without a length is chunked; h2c simply sends none.
      const unsized = await sendSeen(wire, port(), {
        path: AUTHORIZE,
        headers:
          wire === "h2c"
            ? { "content-type": "application/json" }
            : { "content-type": "application/json", "transfer-encoding": "chunked" },
        body:
          wire === "h2c"
            ? authorizeJson
            : `${authorizeJson.length.toString(16)}\r\n${authorizeJson}\r\n0\r\n\r\n`,
      });
      expect(unsized.servedBy).toBe("connect-node");
      expect(unsized.json).toMatchObject({ endpoint: path });
    });

    it("an unknown method is connect-node's readable 404", async () => {
      const seen = await sendSeen(
        wire,
        port(),
        jsonPost("/tollgate.v1.TollgateService/Authorise", "{}"),
      );
      expect(seen.wroteBy).toBe("connect-node");
      expect(seen.answer.status).toBe(404);
      expect((seen.json as { message: string }).message).toContain(`did you mean ${AUTHORIZE}`);
    });
  });

  describe("cancellation and shutdown", () => {
    for (const way of ["direct", "connect-node"] as const) {
      it(`a client that goes away mid-call aborts ctx.signal (${way})`, async () => {
        const entered = gate();
        let outcome: Promise<"aborted" | "not aborted"> | undefined;
        authorize = async (_req, ctx) => {
          outcome = abortedWithin(ctx.signal, 3000);
          entered.open();
          await outcome;
          return {};
        };
        const r = jsonPost(AUTHORIZE, "{}", way === "direct" ? {} : TO_CONNECT_NODE);
        servedBy = undefined;
        const sent = send(wire, port(), r);
        await entered.promise;
        expect(servedBy).toBe(way);
        sent.destroy();
        expect(await outcome).toBe("aborted");
        expect(lastCtx?.signal.aborted).toBe(true);
      });
    }

    it("a call answered in full does not abort ctx.signal", async () => {
      let signal: AbortSignal | undefined;
      authorize = async (_req, ctx) => {
        signal = ctx.signal;
        return {};
      };
      const seen = await sendSeen(wire, port(), jsonPost(AUTHORIZE, "{}"));
      expect(seen.servedBy).toBe("direct");
      await sleep(50);
      expect(signal?.aborted).toBe(false);
    });

    it("close(graceMs) waits for an in-flight direct call, which is answered", async () => {
      const servers = await startBothPorts(TollgateService, handlers, {
        maxMessageBytes: MAX_MESSAGE_BYTES,
      });
      const entered = gate();
      let handlerDoneAt = 0;
      authorize = async () => {
        entered.open();
        await sleep(400);
        handlerDoneAt = Date.now();
        return { message: "finished" };
      };
      servedBy = undefined;
      const sent = send(wire, portOf(servers), jsonPost(AUTHORIZE, "{}"));
      await entered.promise;
      expect(servedBy).toBe("direct");
      const started = Date.now();
      await servers.close(5000);
      const closedAt = Date.now();
      const answer = await sent.answer;
      sent.destroy();
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body.toString())).toEqual({ message: "finished" });
      expect(handlerDoneAt).toBeGreaterThan(0);
      expect(closedAt).toBeGreaterThanOrEqual(handlerDoneAt);
      expect(closedAt - started).toBeLessThan(4000);
    });
  });
});

describe.each(WIRES)("CORS over $name", ({ wire, portOf }) => {
  const ORIGIN = "https://app.example";
  let servers: Servers;
  beforeAll(async () => {
    servers = await startBothPorts(TollgateService, handlers, {
      maxMessageBytes: MAX_MESSAGE_BYTES,
      corsOrigins: [ORIGIN],
    });
  });
  afterAll(async () => {
    await servers?.close(1000);
  });
  const corsHeaders = (a: HttpAnswer) =>
    Object.fromEntries(
      Object.entries(a.headers).filter(([k]) => k.startsWith("access-control-") || k === "vary"),
    );

  for (const [what, body, status] of [
    ["an answer", '{"path":"/cors"}', 200],
    ["a refusal", '{"pth":"/cors"}', 400],
  ] as const) {
    it(`${what} carries the same CORS headers as connect-node's`, async () => {
      const r = jsonPost(AUTHORIZE, body, { origin: ORIGIN });
      const direct = await sendSeen(wire, portOf(servers), r);
      const viaNode = await sendSeen(wire, portOf(servers), {
        ...r,
        headers: { ...r.headers, ...TO_CONNECT_NODE },
      });
      expect([direct.wroteBy, viaNode.wroteBy]).toEqual(["direct", "connect-node"]);
      expect(direct.answer.status).toBe(status);
      expect(corsHeaders(direct.answer)).toMatchObject({
        "access-control-allow-origin": ORIGIN,
        vary: "Origin",
        "access-control-expose-headers": expect.stringContaining("retry-after"),
      });
      expect(corsHeaders(direct.answer)).toEqual(corsHeaders(viaNode.answer));
      expect(comparable(direct)).toEqual(comparable(viaNode));
    });
  }

  it("another origin gets no CORS headers from the direct path", async () => {
    const seen = await sendSeen(
      wire,
      portOf(servers),
      jsonPost(AUTHORIZE, "{}", { origin: "https://evil.example" }),
    );
    expect(seen.wroteBy).toBe("direct");
    expect(seen.answer.status).toBe(200);
    expect(corsHeaders(seen.answer)).toEqual({});
  });
});
