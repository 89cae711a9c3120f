/**
 * Shared tools of the hostile-input, transport and leak suites: raw HTTP/2 gRPC
 * calls (so a test can send bytes no generated client would), a Redis MONITOR
 * tap, a process's resident memory, and throwaway TLS material made by openssl.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, constants } from "node:http2";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A gRPC length-prefixed message: flag byte, 4-byte big-endian length, payload. */
export function grpcFrame(payload: Uint8Array, compressed = false): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(compressed ? 1 : 0, 0);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** The answer to a raw gRPC call. */
export interface RawGrpcAnswer {
  httpStatus: number;
  /** grpc-status (from trailers, or headers for trailers-only answers); -1 if none. */
  grpcStatus: number;
  grpcMessage: string;
  body: Buffer;
  /** Every header and trailer value, joined (for leak scans). */
  headerText: string;
}

/**
 * Sends `body` (already framed, or any bytes at all) as one gRPC request over a
 * fresh HTTP/2 connection and collects the answer. Never throws on a gRPC error.
 */
export function rawGrpc(
  baseUrl: string,
  path: string,
  body: Buffer,
  headers: Record<string, string> = {},
  timeoutMs = 10_000,
): Promise<RawGrpcAnswer> {
  return new Promise((resolve, reject) => {
    const session = connect(baseUrl);
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`no answer to ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    session.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    const req = session.request({
      [constants.HTTP2_HEADER_METHOD]: "POST",
      [constants.HTTP2_HEADER_PATH]: path,
      "content-type": "application/grpc+proto",
      te: "trailers",
      ...headers,
    });
    let httpStatus = 0;
    let grpcStatus = -1;
    let grpcMessage = "";
    let headerText = "";
    const take = (h: Record<string, unknown>) => {
      headerText += `${JSON.stringify(h)}\n`;
      if (h["grpc-status"] !== undefined) grpcStatus = Number(h["grpc-status"]);
      if (typeof h["grpc-message"] === "string")
        grpcMessage = decodeURIComponent(h["grpc-message"]);
    };
    req.on("response", (h) => {
      httpStatus = Number(h[":status"]);
      take(h);
    });
    req.on("trailers", (h) => take(h));
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    const done = () => {
      clearTimeout(timer);
      session.close();
      resolve({ httpStatus, grpcStatus, grpcMessage, body: Buffer.concat(chunks), headerText });
    };
    req.on("end", done);
    req.on("error", (err) => {
      clearTimeout(timer);
      session.destroy();
      reject(err);
    });
    req.end(body);
  });
}

/** The payload of the first gRPC message in `body` (uncompressed answers only). */
export function firstMessage(body: Buffer): Buffer {
  if (body.length < 5) return Buffer.alloc(0);
  return body.subarray(5, 5 + body.readUInt32BE(1));
}

/** Resident set size of a process, kB (Linux /proc). */
export function rssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

/** A Redis MONITOR tap over a raw socket: every command Redis runs, one line each. */
export interface RedisTap {
  lines: string[];
  close(): void;
}

/** Starts MONITOR on 127.0.0.1:`port`; resolves once Redis confirmed it. */
export function monitorRedis(port: number): Promise<RedisTap> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    const lines: string[] = [];
    let pending = "";
    let started = false;
    socket.on("error", reject);
    socket.on("data", (b: Buffer) => {
      pending += b.toString("utf8");
      const parts = pending.split("\r\n");
      pending = parts.pop() ?? "";
      for (const p of parts) {
        if (!started && p === "+OK") {
          started = true;
          resolve({ lines, close: () => socket.destroy() });
          continue;
        }
        lines.push(p);
      }
    });
    socket.connect(port, "127.0.0.1", () => socket.write("MONITOR\r\n"));
  });
}

/** Waits `ms` milliseconds. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `probe` until it returns true or `timeoutMs` passes; returns the last result. */
export async function waitFor(probe: () => boolean | Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
}

/** Throwaway PKI made with openssl in a temp dir: a CA, server and client certificates. */
export interface TestPki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** Issues another server certificate (CN `cn`) into `<dir>/<name>.{crt,key}`. */
  issueServer(name: string, cn: string): { cert: string; key: string };
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

/** Creates the PKI (P-256 keys, one day of validity, SAN 127.0.0.1 and localhost). */
export function createTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-tls-"));
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(
    ["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.crt"]
      .concat(["-days", "1", "-subj", "/CN=tollgate-test-ca"])
      .concat(["-addext", "basicConstraints=critical,CA:TRUE"])
      .concat(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
    dir,
  );
  const issue = (name: string, cn: string, ext: string) => {
    openssl(
      ["req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`],
      dir,
    );
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(
      ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key"]
        .concat(["-CAcreateserial", "-out", `${name}.crt`, "-days", "1"])
        .concat(["-extfile", `${name}.ext`]),
      dir,
    );
    return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  };
  const serverExt =
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n";
  const server = issue("server", "tollgate-server-1", serverExt);
  const client = issue(
    "client",
    "tollgate-client",
    "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
  );
  return {
    dir,
    caCert: join(dir, "ca.crt"),
    serverCert: server.cert,
    serverKey: server.key,
    clientCert: client.cert,
    clientKey: client.key,
    issueServer: (name, cn) => issue(name, cn, serverExt),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
