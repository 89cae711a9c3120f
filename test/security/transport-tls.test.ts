/**
 * TLS on the RPC ports, against the built server with certificates made by
 * openssl at test time: TLS 1.3 only, ALPN picks gRPC or Connect, mTLS refuses
 * a client without a certificate, replaced certificate files are served to new
 * connections, and a non-loopback plaintext listener needs an explicit opt-in.
 */
import { spawn } from "node:child_process";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { freePort } from "../helpers/free-port.js";
import { CLI, startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";
import { createTestPki, rawGrpc, type TestPki, waitFor } from "./support.js";

let pki: TestPki;
let tlsProc: TollgateProcess;
let mtlsProc: TollgateProcess;

beforeAll(async () => {
  pki = createTestPki();
  const tlsEnv = {
    TOLLGATE_TLS_CERT_FILE: pki.serverCert,
    TOLLGATE_TLS_KEY_FILE: pki.serverKey,
    TOLLGATE_LOG_LEVEL: "info",
  };
  [tlsProc, mtlsProc] = await Promise.all([
    startTollgateProcess(tlsEnv),
    startTollgateProcess({ ...tlsEnv, TOLLGATE_TLS_CLIENT_CA_FILE: pki.caCert }),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all([tlsProc?.stop(), mtlsProc?.stop()]);
  pki?.remove();
});

const https = (p: TollgateProcess, port = p.port) => `https://127.0.0.1:${port}`;

/** Opens a TLS connection and resolves once the handshake (and first read) settles. */
function handshake(
  port: number,
  o: { maxVersion?: "TLSv1.2" | "TLSv1.3"; alpn?: string[]; client?: boolean } = {},
): Promise<{ ok: true; socket: TLSSocket } | { ok: false; error: string }> {
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host: "127.0.0.1",
      port,
      ca: readFileSync(pki.caCert),
      servername: "localhost",
      ...(o.maxVersion && { maxVersion: o.maxVersion }),
      ...(o.alpn && { ALPNProtocols: o.alpn }),
      ...(o.client && { cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) }),
    });
    socket.once("secureConnect", () => resolve({ ok: true, socket }));
    socket.once("error", (err) => resolve({ ok: false, error: err.message }));
  });
}

async function peerCn(port: number): Promise<string> {
  const h = await handshake(port, { alpn: ["h2"] });
  if (!h.ok) throw new Error(h.error);
  const cn = String(h.socket.getPeerCertificate().subject.CN);
  h.socket.destroy();
  return cn;
}

describe("TLS", () => {
  it("negotiates TLS 1.3 and refuses TLS 1.2 on both RPC ports", async () => {
    for (const port of [tlsProc.port, tlsProc.httpPort]) {
      const ok = await handshake(port, { alpn: ["h2"] });
      expect(ok.ok).toBe(true);
      if (ok.ok) {
        expect(ok.socket.getProtocol()).toBe("TLSv1.3");
        expect(ok.socket.alpnProtocol).toBe("h2");
        ok.socket.destroy();
      }
      const old = await handshake(port, { maxVersion: "TLSv1.2" });
      expect(old.ok).toBe(false);
      if (!old.ok) expect(old.error).toMatch(/protocol version|unsupported protocol|alert/i);
    }
  });

  it("serves gRPC over ALPN h2 and Connect over ALPN http/1.1", async () => {
    const ca = readFileSync(pki.caCert);
    const grpc = createClient(
      TollgateService,
      createGrpcTransport({ baseUrl: https(tlsProc), nodeOptions: { ca } }),
    );
    expect((await grpc.authorize({})).reason).toBe(Reason.MISSING_KEY);
    for (const port of [tlsProc.port, tlsProc.httpPort]) {
      const connect = createClient(
        TollgateService,
        createConnectTransport({
          baseUrl: https(tlsProc, port),
          httpVersion: "1.1",
          nodeOptions: { ca },
        }),
      );
      expect((await connect.authorize({})).reason).toBe(Reason.MISSING_KEY);
    }
  });

  it("does not speak plaintext on a TLS port", async () => {
    // h2c: the connection is dropped without any HTTP answer.
    const answer = await rawGrpc(
      tlsProc.url,
      "/tollgate.v1.TollgateService/Authorize",
      Buffer.alloc(5),
    ).catch((err: Error) => err);
    if (!(answer instanceof Error)) {
      expect({ http: answer.httpStatus, grpc: answer.grpcStatus }).toEqual({ http: 0, grpc: -1 });
    }
    const res = await fetch(`${tlsProc.url}/tollgate.v1.TollgateService/Authorize`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    }).catch((err: Error) => err);
    expect(res).toBeInstanceOf(Error);
  });

  it("serves replaced certificate files to new connections without a restart", async () => {
    expect(await peerCn(tlsProc.port)).toBe("tollgate-server-1");
    const next = pki.issueServer("server2", "tollgate-server-2");
    // Replace in place the way a Secret update lands: write beside, then rename over.
    writeFileSync(join(pki.dir, "server.key.tmp"), readFileSync(next.key));
    writeFileSync(join(pki.dir, "server.crt.tmp"), readFileSync(next.cert));
    renameSync(join(pki.dir, "server.key.tmp"), pki.serverKey);
    renameSync(join(pki.dir, "server.crt.tmp"), pki.serverCert);
    const seen = await waitFor(
      async () => (await peerCn(tlsProc.port)) === "tollgate-server-2",
      5_000,
    );
    expect(seen).toBe(true);
    expect(await peerCn(tlsProc.httpPort)).toBe("tollgate-server-2");
    expect(tlsProc.logs.some((l) => l.msg === "TLS certificates reloaded")).toBe(true);
  });
});

describe("mTLS", () => {
  it("refuses a client without a certificate and serves one with a certificate the CA signed", async () => {
    const ca = readFileSync(pki.caCert);
    const anonymous = createClient(
      TollgateService,
      createGrpcTransport({ baseUrl: https(mtlsProc), nodeOptions: { ca } }),
    );
    const err = await anonymous.authorize({}).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err).toBeInstanceOf(ConnectError);
    expect(err?.code).not.toBe(Code.InvalidArgument);
    const connectAnonymous = createClient(
      TollgateService,
      createConnectTransport({ baseUrl: https(mtlsProc), httpVersion: "1.1", nodeOptions: { ca } }),
    );
    await expect(connectAnonymous.authorize({})).rejects.toThrow();

    const withCert = {
      ca,
      cert: readFileSync(pki.clientCert),
      key: readFileSync(pki.clientKey),
    };
    const grpc = createClient(
      TollgateService,
      createGrpcTransport({ baseUrl: https(mtlsProc), nodeOptions: withCert }),
    );
    expect((await grpc.authorize({})).reason).toBe(Reason.MISSING_KEY);
    const connect = createClient(
      TollgateService,
      createConnectTransport({
        baseUrl: https(mtlsProc, mtlsProc.httpPort),
        httpVersion: "1.1",
        nodeOptions: withCert,
      }),
    );
    expect((await connect.authorize({})).reason).toBe(Reason.MISSING_KEY);
  });
});

describe("binding off loopback", () => {
  /** Runs `serve` with `env`; resolves to its exit code and output once it exits or is serving. */
  async function serve(env: Record<string, string>) {
    const child = spawn(process.execPath, [CLI, "serve"], {
      env: {
        PATH: process.env.PATH ?? "",
        TOLLGATE_ADDR: "0.0.0.0:0",
        TOLLGATE_HTTP_ADDR: "",
        TOLLGATE_ADMIN_ADDR: `127.0.0.1:${await freePort()}`,
        TOLLGATE_MANAGEMENT_TOKEN: "off-loopback-token-0123456789",
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on("data", (b: Buffer) => {
      out += b.toString();
    });
    await waitFor(() => child.exitCode !== null || out.includes("tollgate serving"), 15_000);
    const code = child.exitCode;
    if (code === null) {
      await new Promise((r) => {
        child.once("exit", r);
        child.kill("SIGTERM");
      });
    }
    return { code, out };
  }

  it("refuses to start without TLS", async () => {
    const r = await serve({});
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.out).toContain("TOLLGATE_TLS_CERT_FILE");
    expect(r.out).not.toContain("tollgate serving");
  });

  it("starts with TOLLGATE_ALLOW_PLAINTEXT=true and logs a warning", async () => {
    const r = await serve({ TOLLGATE_ALLOW_PLAINTEXT: "true" });
    expect(r.code).toBeNull(); // it was serving until stopped
    const warning = r.out
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { level: string; msg: string })
      .find((l) => l.level === "warn" && /without TLS/.test(l.msg));
    expect(warning).toBeDefined();
  });
});
