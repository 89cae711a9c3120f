/**
 * Attacks on key management from the pod's loopback: guessing the management
 * token (counted, logged at a bounded rate, recorded as an event, and slowed
 * down, while the real token still gets through at once), and — in dev mode,
 * where no token is configured — a browser page of another site reaching the
 * port through DNS rebinding (foreign Host or Origin). Against the built
 * server, bounded in count, 127.0.0.1 only.
 */
import { request } from "node:http";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventType } from "../../src/gen/tollgate/v1/event_pb.js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";
import { sleep } from "./support.js";

const TOKEN = "guessing-test-management-token-0123456789";
const GUESSES = 120;
const CONCURRENCY = 20;

async function metric(proc: TollgateProcess, line: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${proc.adminPort}/metrics`)).text();
  const m = text.split("\n").find((l) => line.test(l));
  return m ? Number(m.split(" ").pop()) : 0;
}

describe("management token guessing", () => {
  let proc: TollgateProcess;
  beforeAll(async () => {
    proc = await startTollgateProcess({ TOLLGATE_MANAGEMENT_TOKEN: TOKEN });
  }, 30_000);
  afterAll(async () => proc?.stop());

  it("is counted, logged at a bounded rate, recorded, and slowed; the real token is never held", async () => {
    const t = createGrpcTransport({ baseUrl: proc.url });
    const keys = createClient(KeyService, t);
    let next = 0;
    const started = Date.now();
    const codes: Code[] = [];
    const worker = async () => {
      while (next < GUESSES) {
        const i = next++;
        try {
          await keys.listKeys(
            {},
            { headers: { authorization: `Bearer guess-${i}-0123456789abcdef` } },
          );
        } catch (err) {
          codes.push(ConnectError.from(err).code);
        }
      }
    };
    const flood = Promise.all(Array.from({ length: CONCURRENCY }, worker));
    // While the flood is held back, the operator's token is answered at once.
    await sleep(300);
    const t0 = Date.now();
    const ok = await keys.listKeys({}, { headers: { authorization: `Bearer ${TOKEN}` } });
    const operatorMs = Date.now() - t0;
    await flood;
    const elapsedS = (Date.now() - started) / 1000;
    console.log(
      `${GUESSES} wrong tokens took ${elapsedS.toFixed(1)} s (${(GUESSES / elapsedS).toFixed(0)}/s); the valid token was answered in ${operatorMs} ms`,
    );
    expect(ok.keys).toBeDefined();
    expect(operatorMs).toBeLessThan(500);
    expect(codes).toHaveLength(GUESSES);
    expect(new Set(codes)).toEqual(new Set([Code.Unauthenticated]));
    // Unthrottled this ran at hundreds per second; held, at most ~concurrency per second.
    expect(GUESSES / elapsedS).toBeLessThan(60);

    expect(await metric(proc, /^tollgate_management_auth_failures_total\{reason="invalid"\}/)).toBe(
      GUESSES,
    );
    const warnings = proc.logs.filter((l) =>
      String(l.msg).startsWith("management authentication failed"),
    );
    expect(warnings.length).toBeGreaterThanOrEqual(1);
    expect(warnings.length).toBeLessThanOrEqual(2);
    expect(proc.output()).not.toContain("guess-1-");

    await sleep(600); // events are written in the background
    const events = await keys.listEvents(
      { type: EventType.MANAGEMENT_AUTH_FAILURE },
      { headers: { authorization: `Bearer ${TOKEN}` } },
    );
    expect(events.events.length).toBeGreaterThanOrEqual(1);
    expect(events.events.length).toBeLessThanOrEqual(2);
    expect(Number(events.events.at(-1)?.attributes.failures)).toBeGreaterThanOrEqual(1);
  }, 60_000);
});

describe("dev mode (no management token) and DNS rebinding", () => {
  let proc: TollgateProcess;
  beforeAll(async () => {
    proc = await startTollgateProcess({});
  }, 30_000);
  afterAll(async () => proc?.stop());

  /** A Connect JSON CreateKey over HTTP/1.1 with the given Host / Origin. */
  function createKey(headers: Record<string, string>): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port: proc.port,
          method: "POST",
          path: "/tollgate.v1.KeyService/CreateKey",
          headers: { "content-type": "application/json", ...headers },
        },
        (res) => {
          let body = "";
          res.on("data", (c: Buffer) => {
            body += c.toString();
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on("error", reject);
      req.end(JSON.stringify({ owner: "rebinding", scopes: ["*"] }));
    });
  }

  it("refuses a foreign Host or Origin (permission_denied) and creates nothing", async () => {
    const attacks: Record<string, string>[] = [
      { host: "evil.example:50051" },
      { host: `rebind.attacker.test:${proc.port}` },
      { host: `127.0.0.1:${proc.port}`, origin: "http://evil.example" },
      { host: `localhost:${proc.port}`, origin: "null" },
    ];
    for (const h of attacks) {
      const r = await createKey(h);
      expect(r.status, JSON.stringify(h)).toBe(403);
      expect(JSON.parse(r.body)).toMatchObject({ code: "permission_denied" });
    }
    const keys = createClient(KeyService, createGrpcTransport({ baseUrl: proc.url }));
    const listed = await keys.listKeys({ owner: "rebinding" });
    expect(listed.keys).toEqual([]);
  });

  it("still serves loopback hosts and origins", async () => {
    const loopback: Record<string, string>[] = [
      { host: `localhost:${proc.port}` },
      { host: `127.0.0.1:${proc.port}`, origin: `http://localhost:${proc.port}` },
      { host: `[::1]:${proc.port}` },
    ];
    for (const h of loopback) {
      const r = await createKey(h);
      expect(r.status, `${JSON.stringify(h)} ${r.body}`).toBe(200);
    }
  });
});
