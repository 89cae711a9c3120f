/**
 * `tollgate usage report` against the built server: the report is charged
 * once by id, printed per limit, and its debt denies the key's next decision.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { CLI, startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const run = promisify(execFile);
let proc: TollgateProcess;

beforeAll(async () => {
  proc = await startTollgateProcess({
    TOLLGATE_POLICY_FILE: "test/fixtures/policies/usage-report.yaml",
    TOLLGATE_ACCESS_LOG: "false",
  });
}, 30_000);

afterAll(async () => {
  await proc?.stop();
});

it("charges a report once by id, prints each limit, and the debt denies the next decision", async () => {
  const transport = createGrpcTransport({ baseUrl: proc.url });
  const tollgate = createClient(TollgateService, transport);
  const keys = createClient(KeyService, transport);
  const { key } = await keys.createKey({ owner: "acme" });
  const id = key?.id ?? "";
  const report = ["usage", "report", "--id", "resp-1", "--key", id, "--cost", "15"];
  const first = await run(process.execPath, [CLI, ...report, "--server", proc.url]);
  expect(first.stdout).toContain("report resp-1 charged");
  expect(first.stdout).toMatch(/per-key\s+0\s+\d+s\s+over/);
  expect(first.stdout).toMatch(/daily\s+985\s/);
  const again = await run(process.execPath, [CLI, ...report, "--server", proc.url, "--json"]);
  expect(JSON.parse(again.stdout).duplicate).toBe(true);
  const next = await tollgate.checkRateLimit({ keyId: id });
  expect(next.allowed).toBe(false);
  expect(next.result?.limits.find((l) => l.name === "daily")?.remaining).toBe(985n);
  const bad = await run(process.execPath, [CLI, ...report.slice(0, 6), "--cost", "0"]).catch(
    (e: { code: number; stderr: string }) => e,
  );
  expect("code" in bad && bad.code).toBe(2);
});
