/**
 * Usage end to end on the built server: allowed requests are counted per key ×
 * endpoint per minute, GetUsage returns them by minute and hour, and the CLI
 * (`tollgate usage`, `tollgate events`) prints readable tables with a chart.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { KeyService, UsageGranularity } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { pollUntil } from "../helpers/clients.js";
import { CLI, startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const run = promisify(execFile);
let proc: TollgateProcess;

beforeAll(async () => {
  proc = await startTollgateProcess({
    TOLLGATE_POLICY_FILE: "test/fixtures/policies/events-usage.yaml",
    TOLLGATE_EVENT_FLUSH_MS: "10",
    TOLLGATE_ACCESS_LOG: "false",
    TOLLGATE_LOG_LEVEL: "info",
  });
}, 30_000);

afterAll(async () => {
  await proc?.stop();
});

it("counts requests per endpoint and shows them with GetUsage and the CLI", async () => {
  const transport = createGrpcTransport({ baseUrl: proc.url });
  const tollgate = createClient(TollgateService, transport);
  const keys = createClient(KeyService, transport);
  const { secret, key } = await keys.createKey({ owner: "acme" });
  const id = key?.id ?? "";
  for (let i = 0; i < 7; i++)
    await tollgate.authorize({ apiKey: secret, method: "GET", path: "/v1/orders" });
  for (let i = 0; i < 3; i++)
    await tollgate.authorize({ apiKey: secret, method: "GET", path: "/other" });
  await tollgate.authorize({ apiKey: "tg_live_nope" }); // a denial is not usage
  // Usage is counted off the decision path: wait until all 10 are in.
  const { value: byMinute } = await pollUntil(
    () => keys.getUsage({ keyId: id }),
    (u) => u.totalRequests >= 10n,
    5_000,
  );
  expect(byMinute.totalRequests).toBe(10n);
  expect(byMinute.buckets.length).toBeGreaterThanOrEqual(60);
  expect(byMinute.endpoints.map((e) => [e.endpoint, e.requests])).toEqual([
    ["orders", 7n],
    ["-", 3n],
  ]);
  const byHour = await keys.getUsage({
    keyId: id,
    granularity: UsageGranularity.HOUR,
    endpoint: "orders",
  });
  expect(byHour.totalRequests).toBe(7n);

  const usage = await run(process.execPath, [
    CLI,
    "usage",
    id,
    "--since",
    "10m",
    "--server",
    proc.url,
  ]);
  expect(usage.stdout).toContain(`usage of ${id}: 10 requests (minute buckets, UTC)`);
  expect(usage.stdout).toContain("█".repeat(40));
  expect(usage.stdout).toMatch(/orders\s+7/);
  const events = await run(process.execPath, [
    CLI,
    "events",
    "list",
    "--type",
    "key_created",
    "--server",
    proc.url,
  ]);
  expect(events.stdout).toContain(`key:${id}`);
  expect(events.stdout).toContain("dev-mode");
  const alerts = await run(process.execPath, [CLI, "events", "alerts", "--server", proc.url]);
  expect(alerts.stdout).toContain("no alerts");
});
