/**
 * The direct unary gRPC path (src/transport/grpc-direct.ts) on the main port,
 * started in-process with handlers the test controls: real grpc-js clients and
 * raw HTTP/2 streams get the answers grpc-js gave before — messages, metadata,
 * errors with details, deadlines, cancellation, malformed framing — while
 * what the path does not serve (compressed requests, health, unknown
 * methods) still reaches grpc-js, and shutdown and the in-flight budget still
 * hold for the calls it answers.
 */
import { constants } from "node:http2";
import { gzipSync } from "node:zlib";
import { create, fromBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BadRequestSchema, RetryInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../src/gen/google/rpc/status_pb.js";
import {
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
} from "../../src/gen/health/v1/health_pb.js";
import {
  type AuthorizeRequest,
  AuthorizeRequestSchema,
  AuthorizeResponseSchema,
  TollgateService,
} from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import type { CallContext, Handlers } from "../../src/services/call-context.js";
import { grpcFrame } from "../security/support.js";
import {
  decodeAnswer,
  encode,
  grpcCall,
  rawCall,
  rawUnary,
  sleep,
  startServers,
} from "./grpc-direct-support.js";

const AUTHORIZE = "/tollgate.v1.TollgateService/Authorize";
const MAX_MESSAGE_BYTES = 4096;

type AuthorizeHandler = Handlers<typeof TollgateService>["authorize"];

/** The default Authorize: reports, as JSON in `message`, the headers named in required_scopes. */
const reportHeaders: AuthorizeHandler = async (req, ctx) => ({
  allowed: true,
  httpStatus: 200,
  endpoint: req.path,
  message: JSON.stringify(
    Object.fromEntries(req.requiredScopes.map((n) => [n, ctx.requestHeader.get(n)])),
  ),
});

/**
 * Which engine called the handler: the direct path calls it synchronously
 * from its stream listener (grpc-direct.ts on the stack), grpc-js from its
 * own call objects. Both give the same answers by design, so without this a
 * test could pass with the direct path not installed at all.
 */
function engineOnStack(): "direct" | "grpc-js" {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 30;
  const stack = new Error().stack ?? "";
  Error.stackTraceLimit = limit;
  return stack.includes("transport/grpc-direct.") ? "direct" : "grpc-js";
}

/** Each test sets what Authorize does; the other methods are fixed. */
let authorize: AuthorizeHandler = reportHeaders;
/** The engine that called the last Authorize. */
let servedBy: "direct" | "grpc-js" | undefined;
const handlers: Handlers<typeof TollgateService> = {
  authorize: (req, ctx) => {
    servedBy = engineOnStack();
    return authorize(req, ctx);
  },
  checkRateLimit: async (req) => ({ allowed: true, decisionId: req.subject }),
  recordEvent: async () => ({}),
  rotateKey: async () => {
    throw new ConnectError("not in this test", Code.Unimplemented);
  },
  reportUsage: async () => ({}),
};

/** A promise and its resolver, for handlers the test holds and releases. */
function gate<T = void>(): { promise: Promise<T>; open(v: T): void } {
  let open!: (v: T) => void;
  const promise = new Promise<T>((r) => {
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

const authorizeBody = (init: Parameters<typeof create<typeof AuthorizeRequestSchema>>[1]) =>
  grpcFrame(encode(AuthorizeRequestSchema, init));

function callAuthorize(
  address: string,
  init: Parameters<typeof create<typeof AuthorizeRequestSchema>>[1],
  o: Parameters<typeof grpcCall>[5] = {},
) {
  return grpcCall(
    address,
    AUTHORIZE,
    AuthorizeRequestSchema,
    AuthorizeResponseSchema,
    create(AuthorizeRequestSchema, init),
    o,
  );
}

describe("direct unary gRPC on the main port", () => {
  let servers: Awaited<ReturnType<typeof startServers>>;
  beforeAll(async () => {
    servers = await startServers(TollgateService, handlers, { maxMessageBytes: MAX_MESSAGE_BYTES });
  });
  afterAll(async () => {
    await servers?.close(1000);
  });
  afterEach(() => {
    authorize = reportHeaders;
    servedBy = undefined;
  });

  describe("a grpc-js client", () => {
    it("gets the handler's message with status OK", async () => {
      const out = await callAuthorize(servers.address, { path: "/orders", requiredScopes: [] });
      expect(out.error).toBeUndefined();
      expect(out.response?.allowed).toBe(true);
      expect(out.response?.httpStatus).toBe(200);
      expect(out.response?.endpoint).toBe("/orders");
      expect(servedBy).toBe("direct");
    });

    it("passes request metadata to ctx.requestHeader, but not transport headers", async () => {
      const md = new grpc.Metadata();
      md.set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
      md.set("x-custom", "custom value");
      md.add("x-multi", "one");
      md.add("x-multi", "two");
      const names = [
        "traceparent",
        "X-Custom",
        "x-multi",
        "x-absent",
        "grpc-timeout",
        "content-type",
        "te",
        "grpc-accept-encoding",
        ":path",
        ":authority",
        ":method",
      ];
      const out = await callAuthorize(
        servers.address,
        { requiredScopes: names },
        { metadata: md, deadlineMs: 5000 },
      );
      expect(out.error).toBeUndefined();
      expect(JSON.parse(out.response?.message ?? "{}")).toEqual({
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "X-Custom": "custom value",
        "x-multi": "one, two",
        "x-absent": null,
        "grpc-timeout": null,
        "content-type": null,
        te: null,
        "grpc-accept-encoding": null,
        ":path": null,
        ":authority": null,
        ":method": null,
      });
      expect(servedBy).toBe("direct");
    });

    it("gets a ConnectError's code, non-ASCII message and details", async () => {
      const message = "clé refusée — ☃ 100% «ok»?";
      authorize = async () => {
        throw new ConnectError(message, Code.FailedPrecondition, undefined, [
          {
            desc: BadRequestSchema,
            value: { fieldViolations: [{ field: "api_key", description: "trop court ✂" }] },
          },
        ]);
      };
      const { error } = await callAuthorize(servers.address, {});
      expect(error?.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(error?.details).toBe(message);
      const bin = error?.metadata.get("grpc-status-details-bin")[0];
      expect(bin).toBeInstanceOf(Buffer);
      const status = fromBinary(StatusSchema, bin as Buffer);
      expect(status.code).toBe(Code.FailedPrecondition);
      expect(status.message).toBe(message);
      expect(status.details).toHaveLength(1);
      const detail = anyUnpack(status.details[0] as never, BadRequestSchema);
      expect(detail?.fieldViolations[0]?.field).toBe("api_key");
      expect(detail?.fieldViolations[0]?.description).toBe("trop court ✂");
      expect(servedBy).toBe("direct");
    });

    it("gets INTERNAL 'internal error' for a plain Error, never its message", async () => {
      authorize = async () => {
        throw new Error("redis at 10.0.0.7:6379 said NOAUTH");
      };
      const { error } = await callAuthorize(servers.address, {});
      expect(error?.code).toBe(grpc.status.INTERNAL);
      expect(error?.details).toBe("internal error");
      expect(error?.metadata.get("grpc-status-details-bin")).toEqual([]);
      expect(servedBy).toBe("direct");
      // A synchronous throw (not a rejected promise) is answered the same way.
      authorize = (() => {
        throw new Error("thrown before any await");
      }) as AuthorizeHandler;
      const sync = await callAuthorize(servers.address, {});
      expect(sync.error?.code).toBe(grpc.status.INTERNAL);
      expect(sync.error?.details).toBe("internal error");
    });

    it("gets INTERNAL 'internal error' for a ConnectError whose details cannot be encoded", async () => {
      authorize = async () => {
        // A fractional int64 (seconds): toBinary refuses it when the details are packed.
        throw new ConnectError("retry later", Code.Unavailable, undefined, [
          { desc: RetryInfoSchema, value: { retryDelay: { seconds: 1.5 as never } } },
        ]);
      };
      const { error } = await callAuthorize(servers.address, {});
      expect(error?.code).toBe(grpc.status.INTERNAL);
      expect(error?.details).toBe("internal error");
      expect(servedBy).toBe("direct");
    });

    it("cancelling the call aborts ctx.signal of the running handler", async () => {
      const entered = gate<CallContext>();
      const outcome = gate<string>();
      authorize = async (_req, ctx) => {
        entered.open(ctx);
        outcome.open(await abortedWithin(ctx.signal, 3000));
        return {};
      };
      let call: grpc.ClientUnaryCall | undefined;
      const done = callAuthorize(servers.address, {}, { onCall: (c) => (call = c) });
      await entered.promise;
      call?.cancel();
      expect(await outcome.promise).toBe("aborted");
      expect((await done).error?.code).toBe(grpc.status.CANCELLED);
      expect(servedBy).toBe("direct");
    });
  });

  describe("deadlines", () => {
    it("ctx.timeoutMs() is about the grpc-timeout sent, undefined without one", async () => {
      authorize = async (_req, ctx) => ({ message: String(ctx.timeoutMs()) });
      const withDeadline = await callAuthorize(servers.address, {}, { deadlineMs: 2000 });
      const left = Number(withDeadline.response?.message);
      expect(left).toBeGreaterThan(1500);
      expect(left).toBeLessThanOrEqual(2000);
      const raw = await rawUnary(servers.url, AUTHORIZE, authorizeBody({}), {
        "grpc-timeout": "250m",
      });
      const rawLeft = Number(decodeAnswer(AuthorizeResponseSchema, raw.body).message);
      expect(rawLeft).toBeGreaterThan(150);
      expect(rawLeft).toBeLessThanOrEqual(250);
      expect(servedBy).toBe("direct");
      const none = await callAuthorize(servers.address, {});
      expect(none.response?.message).toBe("undefined");
    });

    it("a handler slower than the deadline: DEADLINE_EXCEEDED at the deadline, ctx.signal aborted", async () => {
      const outcome = gate<string>();
      authorize = async (_req, ctx) => {
        outcome.open(await abortedWithin(ctx.signal, 1500));
        return { message: "too late" };
      };
      // Raw, so the answer is the server's (a grpc-js client enforces its own deadline too).
      const answer = await rawUnary(servers.url, AUTHORIZE, authorizeBody({}), {
        "grpc-timeout": "100m",
      });
      expect(answer.grpcStatus).toBe(grpc.status.DEADLINE_EXCEEDED);
      expect(answer.grpcMessage).toBe("Deadline exceeded");
      expect(answer.body.length).toBe(0);
      expect(answer.ms).toBeLessThan(1000);
      expect(await outcome.promise).toBe("aborted");
      expect(servedBy).toBe("direct");
    });

    it("an invalid grpc-timeout is INTERNAL and the handler never runs", async () => {
      let ran = false;
      authorize = async () => {
        ran = true;
        return {};
      };
      const answer = await rawUnary(servers.url, AUTHORIZE, authorizeBody({}), {
        "grpc-timeout": "soon",
      });
      expect(answer.grpcStatus).toBe(grpc.status.INTERNAL);
      expect(answer.grpcMessage).toBe('Invalid grpc-timeout value "soon"');
      await sleep(50);
      expect(ran).toBe(false);
    });
  });

  describe("raw framing", () => {
    it("malformed protobuf is INVALID_ARGUMENT", async () => {
      // Field 1 (api_key), length 5, but one byte follows.
      const answer = await rawUnary(
        servers.url,
        AUTHORIZE,
        grpcFrame(Buffer.from([0x0a, 0x05, 0x61])),
      );
      expect(answer.grpcStatus).toBe(grpc.status.INVALID_ARGUMENT);
      expect(answer.grpcMessage).toBe("request is not a valid protobuf message");
    });

    it("a frame longer than maxMessageBytes is RESOURCE_EXHAUSTED before the body is sent", async () => {
      const call = rawCall(servers.url, AUTHORIZE);
      const head = Buffer.alloc(5);
      head.writeUInt32BE(1_000_000, 1);
      // The prefix and a few bytes of the claimed megabyte; the request is never ended.
      call.req.write(Buffer.concat([head, Buffer.alloc(100)]));
      const answer = await call.answer;
      call.close();
      expect(answer.grpcStatus).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(answer.grpcMessage).toBe(
        `Received message larger than max (1000000 vs ${MAX_MESSAGE_BYTES})`,
      );
    });

    it("the compressed flag without grpc-encoding is INTERNAL", async () => {
      const answer = await rawUnary(
        servers.url,
        AUTHORIZE,
        grpcFrame(encode(AuthorizeRequestSchema, { path: "/x" }), true),
      );
      expect(answer.grpcStatus).toBe(grpc.status.INTERNAL);
      expect(answer.grpcMessage).toBe(
        'Received compressed message but "grpc-encoding" header was identity',
      );
    });

    it("no message, or a truncated frame, is UNIMPLEMENTED", async () => {
      const empty = await rawUnary(servers.url, AUTHORIZE, Buffer.alloc(0));
      expect(empty.grpcStatus).toBe(grpc.status.UNIMPLEMENTED);
      expect(empty.grpcMessage).toBe(`Received no request message for unary method ${AUTHORIZE}`);
      const whole = authorizeBody({ path: "/truncated" });
      const truncated = await rawUnary(servers.url, AUTHORIZE, whole.subarray(0, whole.length - 2));
      expect(truncated.grpcStatus).toBe(grpc.status.UNIMPLEMENTED);
      const prefixOnly = await rawUnary(servers.url, AUTHORIZE, whole.subarray(0, 3));
      expect(prefixOnly.grpcStatus).toBe(grpc.status.UNIMPLEMENTED);
    });

    it("two messages are UNIMPLEMENTED", async () => {
      let ran = false;
      authorize = async () => {
        ran = true;
        return {};
      };
      const one = authorizeBody({ path: "/a" });
      const answer = await rawUnary(servers.url, AUTHORIZE, Buffer.concat([one, one]));
      expect(answer.grpcStatus).toBe(grpc.status.UNIMPLEMENTED);
      expect(answer.grpcMessage).toBe(
        `Received a second request message for unary method ${AUTHORIZE}`,
      );
      expect(ran).toBe(false);
    });

    it("grpc-encoding identity and content-type application/grpc are served directly", async () => {
      const answer = await rawUnary(servers.url, AUTHORIZE, authorizeBody({ path: "/identity" }), {
        "content-type": "application/grpc",
        "grpc-encoding": "identity",
      });
      expect(answer.grpcStatus).toBe(0);
      expect(decodeAnswer(AuthorizeResponseSchema, answer.body).endpoint).toBe("/identity");
      expect(servedBy).toBe("direct");
    });

    it("a body split across many small DATA writes is answered", async () => {
      const body = authorizeBody({ path: "/split/into/pieces", requiredScopes: ["x-piece"] });
      const call = rawCall(servers.url, AUTHORIZE, { "x-piece": "yes" });
      // 1 to 3 bytes at a time, each in its own DATA frame (the writes wait for the socket).
      for (let i = 0; i < body.length; ) {
        const n = 1 + (i % 3);
        await new Promise<void>((r) => call.req.write(body.subarray(i, i + n), () => r()));
        await sleep(2);
        i += n;
      }
      call.req.end();
      const answer = await call.answer;
      call.close();
      expect(answer.grpcStatus).toBe(0);
      const res = decodeAnswer(AuthorizeResponseSchema, answer.body);
      expect(res.endpoint).toBe("/split/into/pieces");
      expect(JSON.parse(res.message)).toEqual({ "x-piece": "yes" });
      expect(servedBy).toBe("direct");
    });
  });

  describe("what grpc-js still serves", () => {
    it("a gzip-compressed request from a grpc-js client is answered", async () => {
      const out = await callAuthorize(
        servers.address,
        { path: "/gzip", requiredScopes: ["x-gz"] },
        {
          channel: { "grpc.default_compression_algorithm": 2 },
          metadata: (() => {
            const md = new grpc.Metadata();
            md.set("x-gz", "1");
            return md;
          })(),
        },
      );
      expect(out.error).toBeUndefined();
      expect(out.response?.endpoint).toBe("/gzip");
      expect(JSON.parse(out.response?.message ?? "{}")).toEqual({ "x-gz": "1" });
      // The client really compressed: grpc-js, not the direct path, ran the handler.
      expect(servedBy).toBe("grpc-js");
    });

    it("a raw gzip-compressed message (grpc-encoding gzip) is answered", async () => {
      const answer = await rawUnary(
        servers.url,
        AUTHORIZE,
        grpcFrame(gzipSync(encode(AuthorizeRequestSchema, { path: "/raw-gzip" })), true),
        { "grpc-encoding": "gzip" },
      );
      expect(answer.grpcStatus).toBe(0);
      expect(decodeAnswer(AuthorizeResponseSchema, answer.body).endpoint).toBe("/raw-gzip");
      expect(servedBy).toBe("grpc-js");
    });

    it("grpc.health.v1 Check answers SERVING", async () => {
      const out = await grpcCall(
        servers.address,
        "/grpc.health.v1.Health/Check",
        HealthCheckRequestSchema,
        HealthCheckResponseSchema,
        create(HealthCheckRequestSchema, { service: "tollgate.v1.TollgateService" }),
      );
      expect(out.error).toBeUndefined();
      expect(out.response?.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    });

    it("an unknown method is UNIMPLEMENTED", async () => {
      for (const path of ["/tollgate.v1.TollgateService/Nope", "/other.v1.Service/Call"]) {
        const out = await grpcCall(
          servers.address,
          path,
          AuthorizeRequestSchema,
          AuthorizeResponseSchema,
          create(AuthorizeRequestSchema, {}),
        );
        expect(out.error?.code, path).toBe(grpc.status.UNIMPLEMENTED);
      }
    });
  });

  describe("the same answers as grpc-js", () => {
    /** Without `date`, which differs by the second. */
    const comparable = (h: Record<string, unknown> | undefined) => {
      if (h === undefined) return undefined;
      const { date: _date, ...rest } = h;
      return { ...rest };
    };
    /** One Authorize answered directly (identity) and by grpc-js (gzip request). */
    async function bothWays(req: Parameters<typeof authorizeBody>[0]) {
      const bytes = encode(AuthorizeRequestSchema, req);
      const headers = { "grpc-accept-encoding": "identity,deflate,gzip" };
      const direct = await rawUnary(servers.url, AUTHORIZE, grpcFrame(bytes), headers);
      expect(servedBy).toBe("direct");
      const viaGrpcJs = await rawUnary(servers.url, AUTHORIZE, grpcFrame(gzipSync(bytes), true), {
        ...headers,
        "grpc-encoding": "gzip",
      });
      expect(servedBy).toBe("grpc-js");
      return { direct, viaGrpcJs };
    }

    it("the same request headers reach ctx.requestHeader", async () => {
      const sent: Record<string, string | string[]> = {
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "x-multi": ["one", "two"],
        "set-cookie": ["a=1", "b=2"],
        cookie: ["c=3", "d=4"],
        // Unpadded base64 and two values in one field: grpc-js reads them as "AQID+g==, /w==".
        "trace-bin": "AQID+g,/w",
        "grpc-trace-bin": "AQID",
        "user-agent": "raw-test/1",
        "grpc-timeout": "5S",
        "accept-encoding": "gzip",
      };
      const names = [...Object.keys(sent), "te", "content-type", "grpc-accept-encoding"];
      const bytes = encode(AuthorizeRequestSchema, { requiredScopes: names });
      const seen = async (body: Buffer, extra: Record<string, string>) => {
        const a = await rawUnary(servers.url, AUTHORIZE, body, { ...sent, ...extra });
        const answer = decodeAnswer(AuthorizeResponseSchema, a.body);
        return { seen: JSON.parse(answer.message) as Record<string, string | null>, by: servedBy };
      };
      const direct = await seen(grpcFrame(bytes), {});
      const viaGrpcJs = await seen(grpcFrame(gzipSync(bytes), true), { "grpc-encoding": "gzip" });
      expect([direct.by, viaGrpcJs.by]).toEqual(["direct", "grpc-js"]);
      expect(direct.seen["x-multi"]).toBe("one, two");
      expect(direct.seen["set-cookie"]).toBe("a=1, b=2");
      expect(direct.seen["grpc-timeout"]).toBeNull();
      expect(direct.seen["trace-bin"]).toBe("AQID+g==, /w==");
      expect(direct.seen).toEqual(viaGrpcJs.seen);
    });

    it("an OK answer: headers, trailers and body", async () => {
      const { direct, viaGrpcJs } = await bothWays({ path: "/same", requiredScopes: ["te"] });
      expect(direct.headers[":status"]).toBe(200);
      expect(direct.headers["content-type"]).toBe("application/grpc+proto");
      expect(direct.headers["grpc-encoding"]).toBe("identity");
      expect(direct.headers["grpc-accept-encoding"]).toBe("identity,deflate,gzip");
      expect(direct.trailers?.["grpc-status"]).toBe("0");
      expect(comparable(direct.headers)).toEqual(comparable(viaGrpcJs.headers));
      expect(comparable(direct.trailers)).toEqual(comparable(viaGrpcJs.trailers));
      expect(direct.body.equals(viaGrpcJs.body)).toBe(true);
    });

    it("a response over maxMessageBytes: RESOURCE_EXHAUSTED, as grpc-js says it", async () => {
      authorize = async () => ({ message: "x".repeat(MAX_MESSAGE_BYTES + 1) });
      const { direct, viaGrpcJs } = await bothWays({});
      expect(direct.grpcStatus).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(direct.grpcMessage).toMatch(/^Sent message larger than max \(\d+ vs\. 4096\)$/);
      expect([direct.grpcMessage, direct.body.length]).toEqual([viaGrpcJs.grpcMessage, 0]);
      expect(comparable(direct.headers)).toEqual(comparable(viaGrpcJs.headers));
    });

    it("a ConnectError with details and a plain Error: trailers-only, the same headers", async () => {
      authorize = async (req: AuthorizeRequest) => {
        if (req.path === "plain") throw new Error("secret detail");
        throw new ConnectError("ça ne va pas", Code.ResourceExhausted, undefined, [
          { desc: BadRequestSchema, value: { fieldViolations: [{ field: "cost" }] } },
        ]);
      };
      for (const path of ["connect", "plain"]) {
        const { direct, viaGrpcJs } = await bothWays({ path });
        expect(direct.trailers, path).toBeUndefined();
        expect(direct.grpcStatus, path).toBe(
          path === "plain" ? Code.Internal : Code.ResourceExhausted,
        );
        expect(comparable(direct.headers), path).toEqual(comparable(viaGrpcJs.headers));
        expect(direct.body.length, path).toBe(0);
      }
    });
  });
});

describe("direct calls under shutdown and the in-flight budget", () => {
  afterEach(() => {
    authorize = reportHeaders;
    servedBy = undefined;
  });

  it("close(graceMs) lets an in-flight direct call finish and answer", async () => {
    const servers = await startServers(TollgateService, handlers, {
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
    const done = callAuthorize(servers.address, {});
    await entered.promise;
    const started = Date.now();
    await servers.close(5000);
    const closedAt = Date.now();
    const out = await done;
    expect(out.error).toBeUndefined();
    expect(out.response?.message).toBe("finished");
    expect(servedBy).toBe("direct");
    expect(handlerDoneAt).toBeGreaterThan(0);
    expect(closedAt).toBeGreaterThanOrEqual(handlerDoneAt);
    expect(closedAt - started).toBeLessThan(4000);
  });

  it("close(graceMs) waits for a handler still running after its client went away", async () => {
    const servers = await startServers(TollgateService, handlers, {
      maxMessageBytes: MAX_MESSAGE_BYTES,
    });
    const entered = gate();
    let handlerDoneAt = 0;
    authorize = async () => {
      entered.open();
      // Work that does not stop on the signal (a Redis write in flight, say).
      await sleep(400);
      handlerDoneAt = Date.now();
      return {};
    };
    const call = rawCall(servers.url, AUTHORIZE);
    call.req.end(authorizeBody({}));
    await entered.promise;
    // The connection is gone, so only the call's own tracking holds the drain.
    call.close();
    await sleep(50);
    await servers.close(5000);
    expect(handlerDoneAt).toBeGreaterThan(0);
    expect(Date.now()).toBeGreaterThanOrEqual(handlerDoneAt);
    expect(servedBy).toBe("direct");
  });

  // As grpc-js's path does (its track ends when the handler settles): the
  // answer went out at the deadline, but the handler's work is still running.
  for (const [way, headers, frame] of [
    ["directly", {}, (b: Buffer) => grpcFrame(b)],
    ["by grpc-js (gzip)", { "grpc-encoding": "gzip" }, (b: Buffer) => grpcFrame(gzipSync(b), true)],
  ] as const) {
    it(`close(graceMs) waits for a handler that outlived its deadline, answered ${way}`, async () => {
      const servers = await startServers(TollgateService, handlers, {
        maxMessageBytes: MAX_MESSAGE_BYTES,
      });
      let entered = false;
      let handlerDoneAt = 0;
      authorize = async () => {
        entered = true;
        await sleep(700);
        handlerDoneAt = Date.now();
        return {};
      };
      // A deadline with room for grpc-js's asynchronous gunzip before the handler starts.
      const answer = await rawUnary(
        servers.url,
        AUTHORIZE,
        frame(encode(AuthorizeRequestSchema, {})),
        {
          ...headers,
          "grpc-timeout": "200m",
        },
      );
      expect(answer.grpcStatus).toBe(grpc.status.DEADLINE_EXCEEDED);
      expect(entered).toBe(true);
      expect(servedBy).toBe(way === "directly" ? "direct" : "grpc-js");
      expect(handlerDoneAt).toBe(0);
      await servers.close(5000);
      expect(handlerDoneAt).toBeGreaterThan(0);
    });
  }

  it("streams beyond maxInflightRequests are refused, and admitted once calls finish", async () => {
    const servers = await startServers(TollgateService, handlers, {
      maxMessageBytes: MAX_MESSAGE_BYTES,
      limits: { maxInflightRequests: 2 },
    });
    try {
      const release = gate();
      let entered = 0;
      authorize = async () => {
        entered++;
        await release.promise;
        return { message: "released" };
      };
      const held = [rawCall(servers.url, AUTHORIZE), rawCall(servers.url, AUTHORIZE)];
      for (const c of held) c.req.end(authorizeBody({}));
      for (let i = 0; i < 100 && entered < 2; i++) await sleep(10);
      expect(entered).toBe(2);
      const excess = rawCall(servers.url, AUTHORIZE);
      excess.req.end(authorizeBody({}));
      const refused = await excess.answer;
      excess.close();
      expect(refused.rstCode).toBe(constants.NGHTTP2_REFUSED_STREAM);
      expect(entered).toBe(2);
      release.open();
      for (const c of held) {
        const a = await c.answer;
        c.close();
        expect(a.grpcStatus).toBe(0);
        expect(decodeAnswer(AuthorizeResponseSchema, a.body).message).toBe("released");
      }
      const after = await rawUnary(servers.url, AUTHORIZE, authorizeBody({}));
      expect(after.grpcStatus).toBe(0);
      expect(servedBy).toBe("direct");
    } finally {
      await servers.close(1000);
    }
  });
});
