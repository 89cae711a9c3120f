/**
 * Real clients of a running Tollgate: a grpc-js client (protobuf-es
 * serialisers), Connect / gRPC-Web / gRPC transports of connect-node, and the
 * CLI, curl and buf curl binaries as processes. Nothing here is a mock.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  create,
  type DescMessage,
  type DescService,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { CLI, type TollgateProcess } from "./tollgate-process.js";

const run = promisify(execFile);

/** The `buf` binary of the @bufbuild/buf npm package (what `npx buf` runs). */
export const BUF = fileURLToPath(new URL("../../node_modules/.bin/buf", import.meta.url));

/** Output of a finished process; never rejects on a non-zero exit. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function runBinary(
  file: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  try {
    const p = run(file, args, { env: options.env, timeout: options.timeoutMs ?? 20_000 });
    if (options.input !== undefined) p.child.stdin?.end(options.input);
    const r = await p;
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string };
    return {
      code: typeof e.code === "number" ? e.code : 1,
      stdout: e.stdout ?? "",
      stderr: e.stderr ?? "",
    };
  }
}

/**
 * Calls a unary method with @grpc/grpc-js over HTTP/2 (`address` is host:port).
 * Resolves to the response or rejects with the grpc-js ServiceError.
 */
export function grpcUnary<I extends DescMessage, O extends DescMessage>(
  address: string,
  service: DescService,
  method: string,
  input: I,
  output: O,
  request: MessageInitShape<I>,
  metadata: Record<string, string> = {},
): Promise<MessageShape<O>> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  return new Promise<MessageShape<O>>((resolve, reject) => {
    client.makeUnaryRequest(
      `/${service.typeName}/${method}`,
      (m: MessageShape<I>) => Buffer.from(toBinary(input, m)),
      (b: Buffer) => fromBinary(output, b),
      create(input, request),
      md,
      { deadline: Date.now() + 5000 },
      (err, res) => {
        client.close();
        if (err || !res) reject(err);
        else resolve(res);
      },
    );
  });
}

/** The transports a caller can use against a process, by name. */
export function transportsOf(p: TollgateProcess): Record<string, Transport> {
  return {
    "Connect over HTTP/1.1 on the main port": createConnectTransport({
      baseUrl: p.url,
      httpVersion: "1.1",
    }),
    "Connect over HTTP/2 on the HTTP port": createConnectTransport({
      baseUrl: p.httpUrl,
      httpVersion: "2",
    }),
    "Connect over HTTP/1.1 on the HTTP port": createConnectTransport({
      baseUrl: p.httpUrl,
      httpVersion: "1.1",
    }),
    "gRPC-Web over HTTP/1.1 on the main port": createGrpcWebTransport({
      baseUrl: p.url,
      httpVersion: "1.1",
    }),
    "gRPC-Web over HTTP/2 on the HTTP port": createGrpcWebTransport({
      baseUrl: p.httpUrl,
      httpVersion: "2",
    }),
    "gRPC (connect-node) on the main port": createGrpcTransport({ baseUrl: p.url }),
    "gRPC (connect-node) on the HTTP port": createGrpcTransport({ baseUrl: p.httpUrl }),
  };
}

/** TollgateService and KeyService clients over one transport. */
export function clientsOver(transport: Transport) {
  return {
    tollgate: createClient(TollgateService, transport),
    keys: createClient(KeyService, transport),
  };
}

/**
 * Runs the built CLI with only PATH and `env` in its environment; `input` goes
 * to its stdin. Killed (SIGTERM) after `timeoutMs`, default 20 s.
 */
export function cli(
  args: string[],
  env: Record<string, string> = {},
  input?: string,
  timeoutMs?: number,
): Promise<RunResult> {
  return runBinary(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH ?? "", ...env },
    ...(input !== undefined && { input }),
    ...(timeoutMs !== undefined && { timeoutMs }),
  });
}

/** POSTs JSON with the real curl binary over HTTP/1.1 (the Connect protocol). */
export async function curlJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const args = [
    "-sS",
    "--http1.1",
    "-X",
    "POST",
    "-H",
    "content-type: application/json",
    "-w",
    "\n%{http_code}",
    "--data-binary",
    JSON.stringify(body),
  ];
  for (const [k, v] of Object.entries(headers)) args.push("-H", `${k}: ${v}`);
  const r = await runBinary("curl", [...args, url]);
  if (r.code !== 0) throw new Error(`curl failed (${r.code}): ${r.stderr}`);
  const lines = r.stdout.trimEnd().split("\n");
  const status = Number(lines.pop());
  return { status, json: JSON.parse(lines.join("\n") || "{}") as Record<string, unknown> };
}

/** Runs `buf curl` from the @bufbuild/buf package. */
export function bufCurl(args: string[]): Promise<RunResult> {
  return runBinary(BUF, ["curl", ...args], { env: process.env });
}

/**
 * Calls `probe` until `done` holds for its result or the deadline passes;
 * returns the last result and the milliseconds it took.
 */
export async function pollUntil<T>(
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs: number,
  intervalMs = 20,
): Promise<{ value: T; ms: number }> {
  const start = Date.now();
  for (;;) {
    const value = await probe();
    const ms = Date.now() - start;
    if (done(value) || ms > timeoutMs) return { value, ms };
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
