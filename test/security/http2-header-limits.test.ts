/**
 * Header-list bounds against the built server, on both ports and both
 * protocols: an oversized header list is refused (HTTP/2: RST_STREAM
 * ENHANCE_YOUR_CALM; HTTP/1.1: 431) whether it comes before or after the
 * client acknowledged the server's SETTINGS, or from a client that never does;
 * and an HPACK "bomb" — one 3 KB header in the dynamic table referenced by
 * many open streams on many connections — stays within a 200 MB heap.
 */
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";
import { grpcFrame, sleep } from "./support.js";
import {
  ALL_DOORS_OK,
  type AttackSession,
  AUTHORIZE,
  AUTHORIZE_BODY,
  attackSession,
  doorsAnswer,
  heldInFlight,
  memoryKb,
  metricValue,
  openFds,
  openStream,
  type StreamOutcome,
  within,
} from "./transport-attacks.js";

const GRPC = { "content-type": "application/grpc", te: "trailers" };
const CONNECT = { "content-type": "application/proto" };

/** `kb` KiB of headers in 8 KiB values with distinct names (never indexed by HPACK). */
function padding(kb: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i * 8 < kb; i++) out[`x-pad-${i}`] = "a".repeat(Math.min(8, kb - i * 8) * 1024);
  return out;
}

/** Sends one request with `extra` headers and a valid body; resolves how it ended (≤ 5 s). */
async function ask(
  a: AttackSession,
  port: "main" | "http",
  extra: Record<string, string>,
): Promise<StreamOutcome> {
  const base = port === "main" ? GRPC : CONNECT;
  const { stream, outcome } = openStream(a.session, { ...base, ...extra });
  stream.end(port === "main" ? grpcFrame(AUTHORIZE_BODY) : AUTHORIZE_BODY);
  await within(5000, () => outcome.state !== "open");
  return outcome;
}

/** The verdict on one request: "served" (HTTP 200), "refused 431", "reset <code>" or "open". */
function verdict(o: StreamOutcome): string {
  if (o.state === "reset") return `reset ${o.rstCode}`;
  if (o.status === 200) return "served";
  if (o.status !== undefined) return `refused ${o.status}`;
  return o.state;
}

/** An HTTP/1.1 request with `extra` headers; resolves to its status (0: connection closed). */
function h1Status(port: number, extra: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path: AUTHORIZE,
        headers: { "content-type": "application/json", connection: "close", ...extra },
        maxHeaderSize: 1 << 20,
        timeout: 5000,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("error", () => resolve(0));
    req.on("timeout", () => req.destroy());
    req.end('{"apiKey":"tg_live_x"}');
  });
}

describe("header list size", () => {
  let proc: TollgateProcess;
  beforeAll(async () => {
    proc = await startTollgateProcess({});
  });
  afterAll(async () => {
    await proc?.stop();
  });

  for (const port of ["main", "http"] as const) {
    it(`refuses 70 KB and 141 KB header lists over HTTP/2 on the ${port} port, however early they come`, async () => {
      const target = port === "main" ? proc.port : proc.httpPort;
      const results: Record<string, string> = {};
      for (const kb of [70, 141]) {
        // Sent with the connection preface, before the server's SETTINGS can
        // have been acknowledged.
        const early = await attackSession(target);
        results[`${kb} KB, first flight`] = verdict(await ask(early, port, padding(kb)));
        early.leave();
        // On a connection whose SETTINGS exchange is complete.
        const late = await attackSession(target);
        await new Promise((r) => late.session.once("localSettings", r));
        await sleep(50);
        results[`${kb} KB, settled connection`] = verdict(await ask(late, port, padding(kb)));
        late.leave();
        // From a client that never acknowledges the server's SETTINGS.
        const rude = await attackSession(target, { withholdSettingsAck: true });
        await sleep(50);
        results[`${kb} KB, SETTINGS never acknowledged`] = verdict(
          await ask(rude, port, padding(kb)),
        );
        rude.leave();
      }
      // Just under the bound is served.
      const fine = await attackSession(target);
      results["60 KB"] = verdict(await ask(fine, port, padding(60)));
      fine.leave();
      expect(results).toEqual({
        "70 KB, first flight": "reset 11",
        "70 KB, settled connection": "reset 11",
        "70 KB, SETTINGS never acknowledged": "reset 11",
        "141 KB, first flight": "reset 11",
        "141 KB, settled connection": "reset 11",
        "141 KB, SETTINGS never acknowledged": "reset 11",
        "60 KB": "served",
      });
      // Streams refused by Tollgate's own check are counted (those Node refuses
      // natively after the SETTINGS exchange never reach JavaScript).
      expect(
        await metricValue(proc, "tollgate_transport_header_list_refusals_total", { port }),
      ).toBeGreaterThanOrEqual(4);
    });

    it(`answers 431 to 70 KB and 141 KB header lists over HTTP/1.1 on the ${port} port`, async () => {
      const target = port === "main" ? proc.port : proc.httpPort;
      expect({
        "70 KB": await h1Status(target, padding(70)),
        "141 KB": await h1Status(target, padding(141)),
        "60 KB": await h1Status(target, padding(60)),
      }).toEqual({ "70 KB": 431, "141 KB": 431, "60 KB": 200 });
    });
  }
});

describe("HPACK bomb under a 200 MB heap", () => {
  let proc: TollgateProcess;
  beforeAll(async () => {
    proc = await startTollgateProcess({}, { nodeArgs: ["--max-old-space-size=200"] });
  });
  afterAll(async () => {
    await proc?.stop("SIGKILL");
  });

  // nghttp2's encoder indexes a header of up to 3 KB (¾ of the 4 KB table):
  // after its first copy, each further one is a 1-byte reference on the wire.
  /** 20 copies of one 3000-byte header: ≈ 60 KB decoded (under the bound), ≈ 3 KB on the wire. */
  const BOMB = { "x-bomb": Array.from({ length: 20 }, () => "b".repeat(3000)) };

  it("holds 12 connections × 200 open streams of 60 KB header lists within bounded memory", async () => {
    const pid = proc.child.pid ?? 0;
    const before = memoryKb(pid).rss;
    const fdsBefore = openFds(pid);
    const attackers: AttackSession[] = [];
    const outcomes: StreamOutcome[] = [];
    for (let c = 0; c < 12; c++) {
      const port = c % 2 === 0 ? proc.port : proc.httpPort;
      const a = await attackSession(port);
      attackers.push(a);
      await new Promise((r) => a.session.once("localSettings", r));
      for (let i = 0; i < 200; i++) {
        // Headers and no body: each stream stays open, holding its header list.
        outcomes.push(
          openStream(a.session, { ...(c % 2 === 0 ? GRPC : CONNECT), ...BOMB }).outcome,
        );
        if (i % 50 === 49) await sleep(10);
      }
    }
    await sleep(2000);
    const during = memoryKb(pid);
    const alive = proc.child.exitCode === null && proc.child.signalCode === null;
    for (const a of attackers) a.leave();
    expect({ alive, output: alive ? "" : proc.output().slice(-500) }).toEqual({
      alive: true,
      output: "",
    });
    // Bounded by the in-flight cap (500 streams) × the header list bound.
    expect((during.peak - before) / 1024).toBeLessThan(160);
    expect(await heldInFlight(proc)).toEqual({ requests: 0, bodyBytes: 0 });
    await within(5000, () => openFds(pid) <= fdsBefore + 2);
    expect(await doorsAnswer(proc)).toEqual(ALL_DOORS_OK);
  }, 60_000);

  it("refuses 120 references to a 3 KB header (360 KB per stream) from a client that never acknowledges SETTINGS", async () => {
    const pid = proc.child.pid ?? 0;
    const before = memoryKb(pid).rss;
    const a = await attackSession(proc.port, { withholdSettingsAck: true });
    const big = { "x-bomb": Array.from({ length: 120 }, () => "c".repeat(3000)) };
    const outcomes: StreamOutcome[] = [];
    for (let i = 0; i < 300; i++) {
      outcomes.push(openStream(a.session, { ...GRPC, ...big }).outcome);
      if (i % 50 === 49) await sleep(10);
    }
    await within(5000, () => outcomes.every((o) => o.state !== "open"));
    const during = memoryKb(pid);
    a.leave();
    expect(proc.child.exitCode).toBeNull();
    expect(outcomes.filter((o) => o.state === "reset").length).toBe(300);
    expect((during.peak - before) / 1024).toBeLessThan(100);
    expect(await doorsAnswer(proc)).toEqual(ALL_DOORS_OK);
  }, 60_000);
});
