/**
 * A webhook receiver that is down: deliveries are retried, the webhook's breaker
 * opens, alerts beyond the bounded queue and alerts out of attempts are dropped
 * and counted — and every Authorize decision meanwhile is answered. Decision
 * latency with a dead receiver is printed here and measured by the benchmark,
 * not asserted (a timed assertion on a shared 2-core machine only measures noise).
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { generateSecret } from "../../src/keys/key-format.js";
import { pollUntil } from "../helpers/clients.js";
import { freePort } from "../helpers/free-port.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

let proc: TollgateProcess;

beforeAll(async () => {
  // A free port nobody listens on: every delivery is refused.
  const url = `http://127.0.0.1:${await freePort()}/hook`;
  const dir = mkdtempSync(join(tmpdir(), "tollgate-hook-"));
  const file = join(dir, "policy.yaml");
  const text = readFileSync("test/fixtures/policies/events-webhook-down.yaml", "utf8");
  writeFileSync(file, text.replaceAll("__RECEIVER__", url));
  proc = await startTollgateProcess({
    TOLLGATE_POLICY_FILE: file,
    TOLLGATE_TEST_WEBHOOK_SECRET: "e2e-webhook-secret-0123456789abcdef",
    TOLLGATE_EVENT_FLUSH_MS: "10",
    TOLLGATE_ACCESS_LOG: "false",
    TOLLGATE_LOG_LEVEL: "info",
  });
}, 30_000);

afterAll(async () => {
  await proc?.stop();
});

const metric = (text: string, name: string, labels: string): number => {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
};

it("retries, opens the breaker, counts drops, and keeps answering decisions", async () => {
  const transport = createGrpcTransport({ baseUrl: proc.url });
  const tollgate = createClient(TollgateService, transport);
  const keys = createClient(KeyService, transport);
  const { secret } = await keys.createKey({ owner: "acme" });
  const timeOne = async () => {
    const t = process.hrtime.bigint();
    const r = await tollgate.authorize({ apiKey: secret, clientIp: "198.51.100.1" });
    expect(r.allowed).toBe(true);
    return Number(process.hrtime.bigint() - t) / 1e6;
  };
  const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.95)] ?? 0;
  for (let i = 0; i < 20; i++) await timeOne(); // warm up
  const before: number[] = [];
  for (let i = 0; i < 100; i++) before.push(await timeOne());

  // 40 attacking IPs: 40 alerts for a queue of 5 and a receiver that is down.
  const during: number[] = [];
  for (let i = 0; i < 40; i++) {
    await tollgate.authorize({ apiKey: generateSecret("live"), clientIp: `203.0.113.${i + 1}` });
    during.push(await timeOne(), await timeOne());
  }
  // Events are flushed in the background: wait for all 40 alerts as well.
  const { value: text } = await pollUntil(
    async () => (await fetch(`http://127.0.0.1:${proc.adminPort}/metrics`)).text(),
    (t) =>
      metric(t, "tollgate_alerts_total", 'rule="any-failure"') >= 40 &&
      metric(t, "tollgate_webhook_dropped_total", 'reason="exhausted"') > 0 &&
      metric(t, "tollgate_breaker_transitions_total", 'breaker="webhook:down",to="open"') > 0,
    10_000,
    100,
  );
  expect(metric(text, "tollgate_alerts_total", 'rule="any-failure"')).toBe(40);
  expect(
    metric(text, "tollgate_webhook_attempts_total", 'result="failure"'),
  ).toBeGreaterThanOrEqual(3);
  expect(metric(text, "tollgate_webhook_attempts_total", 'result="success"')).toBe(0);
  expect(
    metric(text, "tollgate_breaker_transitions_total", 'breaker="webhook:down",to="open"'),
  ).toBeGreaterThan(0);
  expect(metric(text, "tollgate_webhook_dropped_total", 'reason="queue_full"')).toBeGreaterThan(0);
  expect(metric(text, "tollgate_webhook_dropped_total", 'reason="exhausted"')).toBeGreaterThan(0);
  // Every decision made while deliveries failed was answered (allowed, above).
  expect(during).toHaveLength(80);
  console.log(
    `Authorize p95 before: ${p95(before).toFixed(2)} ms, while the receiver was down: ${p95(during).toFixed(2)} ms`,
  );
});
