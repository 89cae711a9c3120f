/**
 * Starting and stopping the built server: bad settings exit 2 with a message
 * naming the setting; SIGTERM turns readiness off, lets in-flight calls finish
 * (bounded by TOLLGATE_SHUTDOWN_TIMEOUT_MS) and exits 0.
 */
import { request } from "node:http";
import { connect } from "node:http2";
import { createServer, type Server } from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import {
  AuthorizeRequestSchema,
  AuthorizeResponseSchema,
  TollgateService,
} from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { generateSecret } from "../../src/keys/key-format.js";
import { cli, clientsOver, pollUntil } from "../helpers/clients.js";
import { freePort } from "../helpers/free-port.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const started: TollgateProcess[] = [];
afterEach(async () => {
  // Anything a test left running is killed, so no process outlives the file.
  await Promise.all(started.splice(0).map((p) => p.stop("SIGKILL")));
});

async function start(env: Record<string, string> = {}): Promise<TollgateProcess> {
  const p = await startTollgateProcess(env);
  started.push(p);
  return p;
}

/**
 * `tollgate serve` with exactly these settings (loopback ports picked by the
 * OS), expected to exit by itself; killed after `timeoutMs` otherwise.
 */
function serve(env: Record<string, string>, timeoutMs = 15_000) {
  return cli(
    ["serve"],
    {
      TOLLGATE_ADDR: "127.0.0.1:0",
      TOLLGATE_HTTP_ADDR: "",
      TOLLGATE_ADMIN_ADDR: "127.0.0.1:0",
      ...env,
    },
    undefined,
    timeoutMs,
  );
}

describe("configuration errors", () => {
  it("refuses to start on a bad setting, naming the variable (exit 2)", async () => {
    const cases: [Record<string, string>, string][] = [
      [
        { TOLLGATE_CACHE_TTL_MS: "abc" },
        "tollgate: invalid settings: TOLLGATE_CACHE_TTL_MS: must be a whole number\n",
      ],
      [
        { TOLLGATE_ADDR: "0.0.0.0:0", TOLLGATE_ALLOW_PLAINTEXT: "true" },
        "tollgate: TOLLGATE_MANAGEMENT_TOKEN (or _FILE) is required when any listener is bound to a non-loopback address\n",
      ],
      [
        { REDIS_URL: "redis://127.0.0.1:1" },
        "tollgate: TOLLGATE_PEPPER (or _FILE) is required with REDIS_URL: every replica must share it\n",
      ],
      [
        { TOLLGATE_MANAGEMENT_TOKEN: "short" },
        "tollgate: invalid settings: TOLLGATE_MANAGEMENT_TOKEN: must be at least 16 bytes\n",
      ],
      [
        { TOLLGATE_ADDR: "127.0.0.1:99999" },
        "tollgate: invalid settings: TOLLGATE_ADDR: port must be 0..65535\n",
      ],
    ];
    const results = await Promise.all(cases.map(([env]) => serve(env)));
    for (const [i, [env, message]] of cases.entries()) {
      expect(results[i]?.code, JSON.stringify(env)).toBe(2);
      expect(results[i]?.stderr, JSON.stringify(env)).toBe(message);
      expect(results[i]?.stdout, JSON.stringify(env)).not.toContain("tollgate serving");
    }
  });

  it("off loopback, asks for TLS first, then for the management token", async () => {
    const noTls = await serve({ TOLLGATE_ADDR: "0.0.0.0:0" });
    expect(noTls.code).toBe(2);
    expect(noTls.stderr).toContain("TOLLGATE_TLS_CERT_FILE");
    const httpPort = await serve({
      TOLLGATE_HTTP_ADDR: "0.0.0.0:0",
      TOLLGATE_ALLOW_PLAINTEXT: "true",
    });
    expect(httpPort.code).toBe(2);
    expect(httpPort.stderr).toContain("TOLLGATE_MANAGEMENT_TOKEN");
  });

  it("names the policy file it cannot use (exit 2)", async () => {
    const r = await serve({ TOLLGATE_POLICY_FILE: "test/fixtures/does-not-exist.yaml" });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("test/fixtures/does-not-exist.yaml");
  });

  it("exits promptly, naming the address, when a port is already taken", async () => {
    // Each listener in turn: the main port, the HTTP port, the admin port.
    const port = await freePort();
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(port, "127.0.0.1", () => r()));
    try {
      const settings = ["TOLLGATE_ADDR", "TOLLGATE_HTTP_ADDR", "TOLLGATE_ADMIN_ADDR"];
      const runs = await Promise.all(
        settings.map(async (setting) => {
          const began = Date.now();
          const r = await serve(
            { TOLLGATE_HTTP_ADDR: "127.0.0.1:0", [setting]: `127.0.0.1:${port}` },
            5000,
          );
          return { setting, ...r, ms: Date.now() - began };
        }),
      );
      for (const r of runs) {
        // Names the setting and the address, and why.
        expect(r.stderr, r.setting).toContain(r.setting);
        expect(r.stderr, r.setting).toContain(`127.0.0.1:${port}`);
        expect(r.stderr, r.setting).toContain("EADDRINUSE");
      }
      // A process that cannot bind every listener must exit by itself with an
      // error, not linger half-started (the harness kills it after 5 s).
      expect(
        runs.map(
          (r) =>
            `${r.setting}: ${r.code === 0 ? "exit 0" : "error exit"}, ${r.ms < 4000 ? "prompt" : "lingered"}`,
        ),
      ).toEqual(settings.map((s) => `${s}: error exit, prompt`));
    } finally {
      blocker.close();
    }
  });
});

describe("dev mode", () => {
  it("with no management token and every listener on loopback, key management is open and the log says so", async () => {
    const p = await start({});
    const { keys, tollgate } = clientsOver(
      createConnectTransport({ baseUrl: p.url, httpVersion: "1.1" }),
    );
    const created = await keys.createKey({ owner: "dev", scopes: ["orders:read"] });
    expect(created.secret).toMatch(/^tg_live_[0-9A-Za-z]{30}$/);
    expect((await tollgate.authorize({ apiKey: created.secret })).allowed).toBe(true);
    expect((await keys.listKeys({})).keys.map((k) => k.id)).toEqual([created.key?.id]);
    const warning = p.logs.find((l) => String(l.msg).startsWith("dev mode:"));
    expect(warning?.level).toBe("warn");
    expect(String(warning?.msg)).toContain("no management token configured");
    expect(await p.stop()).toBe(0);
    expect(p.output()).not.toContain(created.secret);
  });
});

/**
 * Starts an Authorize call over HTTP/1.1 and sends only part of its body, so
 * it stays in flight until `finish()`. `Expect: 100-continue` makes the server
 * say when it has taken the request (its handler is running); this resolves
 * only then, so a signal sent afterwards finds the call in flight.
 */
async function halfSentAuthorize(p: TollgateProcess, body: Buffer) {
  let accepted: () => void = () => {};
  const handling = new Promise<void>((r) => {
    accepted = r;
  });
  let status = 0;
  let text = "";
  const req = request(`${p.url}/tollgate.v1.TollgateService/Authorize`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "content-length": body.length,
      expect: "100-continue",
    },
  });
  const ended = new Promise<string>((resolve) => {
    req.on("response", (res) => {
      status = res.statusCode ?? 0;
      res.on("data", (c: Buffer) => {
        text += c.toString();
      });
      res.on("end", () => resolve("answered"));
    });
    req.on("error", (err) => resolve(`failed: ${err.message}`));
  });
  req.on("continue", () => {
    req.write(body.subarray(0, 10));
    accepted();
  });
  req.flushHeaders();
  await handling;
  return {
    /** Sends the rest of the body; resolves with how the call ended. */
    async finish() {
      req.end(body.subarray(10));
      const result = await ended;
      return { result, status, body: text };
    },
    abort: () => req.destroy(),
  };
}

describe("SIGTERM", () => {
  it("turns /readyz to 503, finishes an in-flight call, then exits 0", async () => {
    const p = await start({ TOLLGATE_SHUTDOWN_TIMEOUT_MS: "5000" });
    const admin = `http://127.0.0.1:${p.adminPort}/readyz`;
    expect((await fetch(admin)).status).toBe(200);

    const call = await halfSentAuthorize(
      p,
      Buffer.from(JSON.stringify({ apiKey: generateSecret("live") })),
    );
    const exited = p.stop("SIGTERM");

    const ready = await pollUntil(
      () =>
        fetch(admin).then(
          (r) => `HTTP ${r.status}`,
          () => (p.child.exitCode === null ? "refused" : `exited with ${p.child.exitCode}`),
        ),
      (s) => s !== "HTTP 200",
      3000,
    );
    expect(ready.value).toBe("HTTP 503");
    const draining = await pollUntil(
      async () => p.logs.some((l) => String(l.msg).startsWith("shutting down: not ready")),
      (seen) => seen,
      2000,
    );
    expect(draining.value).toBe(true);
    expect(p.child.exitCode).toBeNull(); // still draining: our call is open

    const outcome = await call.finish();
    expect(outcome.result).toBe("answered");
    expect(outcome.status).toBe(200);
    expect(JSON.parse(outcome.body)).toMatchObject({
      reason: "REASON_UNKNOWN_KEY",
      httpStatus: 401,
    });
    expect(await exited).toBe(0);
    expect(p.logs.some((l) => l.msg === "stopped")).toBe(true);
  });

  it("finishes an in-flight gRPC call on the main port (grpc-js) before exiting 0", async () => {
    const p = await start({ TOLLGATE_SHUTDOWN_TIMEOUT_MS: "5000" });
    // A gRPC call whose one message is only partly sent (raw HTTP/2, so the
    // frame can be split): the server has the stream and waits for the rest.
    const msg = toBinary(
      AuthorizeRequestSchema,
      create(AuthorizeRequestSchema, { apiKey: generateSecret("live") }),
    );
    const frame = Buffer.alloc(5 + msg.length);
    frame.writeUInt32BE(msg.length, 1);
    frame.set(msg, 5);
    const session = connect(p.url);
    try {
      await new Promise((r) => session.once("connect", r));
      const stream = session.request({
        ":method": "POST",
        ":path": "/tollgate.v1.TollgateService/Authorize",
        "content-type": "application/grpc",
        te: "trailers",
      });
      let data = Buffer.alloc(0);
      let grpcStatus: unknown;
      stream.on("data", (c: Buffer) => {
        data = Buffer.concat([data, c]);
      });
      stream.on("trailers", (t) => {
        grpcStatus = t["grpc-status"];
      });
      const closed = new Promise((r) => stream.on("close", r));
      stream.write(frame.subarray(0, 3));
      // A PING is answered after the frames sent before it: the server has the stream.
      await new Promise<void>((resolve, reject) =>
        session.ping((err) => (err ? reject(err) : resolve())),
      );
      const exited = p.stop("SIGTERM");
      await pollUntil(
        async () => p.logs.some((l) => String(l.msg).startsWith("shutting down")),
        (seen) => seen,
        3000,
      );
      expect(p.child.exitCode).toBeNull();
      stream.end(frame.subarray(3));
      await closed;
      expect(grpcStatus).toBe("0");
      const res = fromBinary(AuthorizeResponseSchema, data.subarray(5));
      expect(res).toMatchObject({ reason: Reason.UNKNOWN_KEY, httpStatus: 401 });
      expect(await exited).toBe(0);
    } finally {
      session.destroy();
    }
  });

  it("finishes an in-flight Connect call over h2c on the HTTP port before exiting 0", async () => {
    const p = await start({ TOLLGATE_SHUTDOWN_TIMEOUT_MS: "5000" });
    const body = Buffer.from(JSON.stringify({ apiKey: generateSecret("live") }));
    const session = connect(p.httpUrl);
    try {
      await new Promise((r) => session.once("connect", r));
      const stream = session.request({
        ":method": "POST",
        ":path": "/tollgate.v1.TollgateService/Authorize",
        "content-type": "application/json",
        "content-length": String(body.length),
      });
      let status = 0;
      let text = "";
      stream.on("response", (h) => {
        status = Number(h[":status"]);
      });
      stream.on("data", (c: Buffer) => {
        text += c.toString();
      });
      const closed = new Promise((r) => stream.on("close", r));
      stream.write(body.subarray(0, 10));
      // A PING is answered after the frames sent before it: the server has the stream.
      await new Promise<void>((resolve, reject) =>
        session.ping((err) => (err ? reject(err) : resolve())),
      );
      const exited = p.stop("SIGTERM");
      await pollUntil(
        async () => p.logs.some((l) => String(l.msg).startsWith("shutting down")),
        (seen) => seen,
        3000,
      );
      expect(p.child.exitCode).toBeNull();
      stream.end(body.subarray(10));
      await closed;
      expect(status).toBe(200);
      expect(JSON.parse(text)).toMatchObject({ reason: "REASON_UNKNOWN_KEY", httpStatus: 401 });
      expect(await exited).toBe(0);
    } finally {
      session.destroy();
    }
  });

  it("exits 0 with calls running concurrently, answering the calls it accepted", async () => {
    const p = await start({ TOLLGATE_SHUTDOWN_TIMEOUT_MS: "5000" });
    const client = createClient(
      TollgateService,
      createConnectTransport({ baseUrl: p.url, httpVersion: "1.1" }),
    );
    let answered = 0;
    let signalled = false;
    const failures: string[] = [];
    const worker = async () => {
      for (let i = 0; i < 500; i++) {
        try {
          const r = await client.authorize({ apiKey: "tg_live_malformed" });
          expect(r.httpStatus).toBe(401);
          answered++;
        } catch (err) {
          // After the signal, new connections are refused; before it nothing fails.
          if (!signalled) failures.push(String(err));
          return;
        }
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    await pollUntil(
      async () => answered,
      (n) => n >= 40,
      10_000,
      5,
    );
    signalled = true;
    const answeredAtSignal = answered;
    const code = await p.stop("SIGTERM");
    await Promise.all(workers);
    expect(code).toBe(0);
    expect(failures).toEqual([]);
    expect(answered).toBeGreaterThanOrEqual(answeredAtSignal);
    expect(p.logs.some((l) => l.msg === "signal received" && l.signal === "SIGTERM")).toBe(true);
    expect(p.logs.some((l) => l.msg === "stopped")).toBe(true);
  });

  it("gives up on a call that never completes after TOLLGATE_SHUTDOWN_TIMEOUT_MS, still exiting 0", async () => {
    const p = await start({ TOLLGATE_SHUTDOWN_TIMEOUT_MS: "500" });
    const call = await halfSentAuthorize(p, Buffer.alloc(1000, " "));
    const began = Date.now();
    expect(await p.stop("SIGTERM")).toBe(0);
    const took = Date.now() - began;
    expect(took).toBeGreaterThanOrEqual(400);
    expect(took).toBeLessThan(3000);
    call.abort();
  });
});
