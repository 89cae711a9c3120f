/**
 * Real clients of a running Tollgate: a grpc-js client (protobuf-es
 * serialisers), Connect / gRPC-Web transports, and the CLI, curl and buf curl
 * binaries as processes.
 */
import { execFile } from "node:child_process";
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
import * as grpc from "@grpc/grpc-js";
import { CLI } from "./tollgate-process.js";

const run = promisify(execFile);

/** Calls a unary method with @grpc/grpc-js. Resolves to the response or rejects with a grpc ServiceError. */
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

/** Runs the built CLI; resolves with exit code and output (never rejects on non-zero). */
export async function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH ?? "", ...env },
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof e.code === "number" ? e.code : 1,
      stdout: e.stdout ?? "",
      stderr: e.stderr ?? "",
    };
  }
}

/** POSTs JSON with the real curl over HTTP/1.1 (Connect protocol). */
export async function curlJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const args = [
    "-s",
    "--http1.1",
    "-X",
    "POST",
    "-H",
    "content-type: application/json",
    "-w",
    "\n%{http_code}",
    "-d",
    JSON.stringify(body),
  ];
  for (const [k, v] of Object.entries(headers)) args.push("-H", `${k}: ${v}`);
  const r = await run("curl", [...args, url]);
  const lines = r.stdout.trimEnd().split("\n");
  const status = Number(lines.pop());
  return { status, json: JSON.parse(lines.join("\n") || "{}") as Record<string, unknown> };
}

/** Runs `buf curl` from the @bufbuild/buf package. */
export async function bufCurl(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run("npx", ["--no-install", "buf", "curl", ...args]);
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof e.code === "number" ? e.code : 1,
      stdout: e.stdout ?? "",
      stderr: e.stderr ?? "",
    };
  }
}
