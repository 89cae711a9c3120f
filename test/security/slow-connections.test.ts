/**
 * Slow and idle connections against the built server, on both RPC ports:
 * a request head that never completes (one byte, or a byte every 200 ms), a
 * body that trickles, an HTTP/2 preface followed by silence or by SETTINGS
 * that are never acknowledged, and connections that go quiet. Each is closed
 * by its timeout; a busy HTTP/2 connection is never cut; and a cap on open
 * connections (logged, counted, below the descriptor limit) keeps the admin
 * port and established connections working when the ports are flooded.
 */
import { connect as h2connect } from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";
import { grpcFrame, rawGrpc, sleep } from "./support.js";
import {
  ALL_DOORS_OK,
  AUTHORIZE,
  AUTHORIZE_BODY,
  attackSession,
  doorsAnswer,
  metricValue,
  openFds,
  openStream,
  rawConnection,
  within,
} from "./transport-attacks.js";

const HEADER_TIMEOUT_MS = 1000;
const BODY_TIMEOUT_MS = 2000;
const IDLE_TIMEOUT_MS = 3000;
const PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/** An empty SETTINGS frame (type 4, no flags, stream 0). */
const SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
const HEAD = `POST ${AUTHORIZE} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n`;

describe("slow and idle connections", () => {
  let proc: TollgateProcess;
  beforeAll(async () => {
    proc = await startTollgateProcess({
      TOLLGATE_HEADER_TIMEOUT_MS: String(HEADER_TIMEOUT_MS),
      TOLLGATE_BODY_TIMEOUT_MS: String(BODY_TIMEOUT_MS),
      TOLLGATE_IDLE_TIMEOUT_MS: String(IDLE_TIMEOUT_MS),
    });
  });
  afterAll(async () => {
    await proc?.stop();
  });

  /** Opens a raw connection, runs `send` on it, and says after how long the server closed it. */
  async function closedAfter(
    port: number,
    send: (write: (s: string | Buffer) => void, isOpen: () => boolean) => Promise<void> | void,
    waitMs: number,
  ): Promise<string> {
    const c = await rawConnection(port);
    const began = Date.now();
    void send(
      (s) => {
        if (!c.closed()) c.socket.write(s);
      },
      () => !c.closed(),
    );
    const closed = await within(waitMs, () => c.closed());
    c.socket.destroy();
    return closed ? `closed (${Math.round((Date.now() - began) / 500) * 500} ms)` : "open";
  }

  const trickle = async (
    write: (s: string) => void,
    isOpen: () => boolean,
    text: string,
    everyMs: number,
  ) => {
    for (const ch of text) {
      if (!isOpen()) return;
      write(ch);
      await sleep(everyMs);
    }
  };

  for (const port of ["main", "http"] as const) {
    it(`closes slow and silent connections on the ${port} port by their timeouts`, async () => {
      const target = port === "main" ? proc.port : proc.httpPort;
      const limit = HEADER_TIMEOUT_MS + 2500;
      const runs = await Promise.all([
        closedAfter(target, () => {}, limit),
        closedAfter(target, (w) => w("G"), limit),
        closedAfter(target, (w, open) => trickle(w, open, HEAD, 200), limit),
        closedAfter(
          target,
          async (w, open) => {
            w(HEAD);
            await trickle(w, open, "x".repeat(100), 200);
          },
          HEADER_TIMEOUT_MS + BODY_TIMEOUT_MS + 2500,
        ),
        closedAfter(target, (w) => w(PREFACE), limit),
        closedAfter(target, (w) => w(Buffer.concat([Buffer.from(PREFACE), SETTINGS])), limit),
      ]);
      const names = [
        "nothing sent",
        "G then nothing",
        "request head, a byte every 200 ms",
        "body, a byte every 200 ms",
        "HTTP/2 preface then silence",
        "HTTP/2 SETTINGS never acknowledged",
      ];
      const got = Object.fromEntries(names.map((n, i) => [n, String(runs[i]).split(" ")[0]]));
      expect(got).toEqual(Object.fromEntries(names.map((n) => [n, "closed"])));
      expect(
        await metricValue(proc, "tollgate_transport_timeouts_total", { port, kind: "header" }),
      ).toBeGreaterThanOrEqual(3);
    }, 30_000);

    it(`sends GOAWAY to a quiet HTTP/2 connection after the idle timeout, never to a busy one, on the ${port} port`, async () => {
      const target = port === "main" ? proc.port : proc.httpPort;
      const quiet = await attackSession(target);
      const busy = await attackSession(target);
      const answered: string[] = [];
      const call = async (a: typeof busy) => {
        const { stream, outcome } = openStream(
          a.session,
          port === "main"
            ? { "content-type": "application/grpc", te: "trailers" }
            : { "content-type": "application/proto" },
        );
        stream.end(port === "main" ? grpcFrame(AUTHORIZE_BODY) : AUTHORIZE_BODY);
        await within(3000, () => outcome.state !== "open");
        answered.push(outcome.state);
      };
      await call(quiet);
      const began = Date.now();
      // The busy connection asks every 500 ms for longer than twice the idle timeout.
      while (Date.now() - began < IDLE_TIMEOUT_MS * 2 + 1000) {
        await call(busy);
        await sleep(500);
      }
      expect({
        quietGoaway: quiet.goaway(),
        quietClosed: quiet.closedByServer(),
        busyGoaway: busy.goaway(),
        busyClosed: busy.closedByServer(),
        allAnswered: answered.every((s) => s === "answered"),
      }).toEqual({
        quietGoaway: 0,
        quietClosed: true,
        busyGoaway: undefined,
        busyClosed: false,
        allAnswered: true,
      });
      quiet.leave();
      busy.leave();
    }, 30_000);
  }

  it("closes an idle HTTP/1.1 keep-alive connection", async () => {
    const c = await rawConnection(proc.port);
    c.socket.write(
      `POST ${AUTHORIZE} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 22\r\n\r\n{"apiKey":"tg_live_x"}`,
    );
    expect(await within(IDLE_TIMEOUT_MS + 3000, () => c.closed())).toBe(true);
    c.socket.destroy();
  });
});

describe("the connection cap", () => {
  let proc: TollgateProcess;
  beforeAll(async () => {
    proc = await startTollgateProcess({
      TOLLGATE_MAX_CONNECTIONS: "40",
      TOLLGATE_HEADER_TIMEOUT_MS: "3000",
    });
  });
  afterAll(async () => {
    await proc?.stop();
  });

  it("refuses connections beyond TOLLGATE_MAX_CONNECTIONS across both ports, logs once and counts them", async () => {
    // An established HTTP/2 connection from before the flood keeps working.
    const established = h2connect(proc.url);
    established.on("error", () => {});
    await new Promise((r) => established.once("connect", r));
    const flood = [];
    for (let i = 0; i < 60; i++) {
      const c = await rawConnection(i % 2 === 0 ? proc.port : proc.httpPort);
      c.socket.write("G");
      flood.push(c);
    }
    await sleep(500);
    const refused = flood.filter((c) => c.closed()).length;
    expect(refused).toBe(21); // 60 + the established one, 40 allowed
    expect(await metricValue(proc, "tollgate_transport_connections_refused_total")).toBe(21);
    expect(await metricValue(proc, "tollgate_transport_connections")).toBe(40);
    const lines = proc.logs.filter((l) => String(l.msg).includes("TOLLGATE_MAX_CONNECTIONS"));
    expect(lines.length).toBe(1);
    expect(lines[0]?.level).toBe("warn");
    // The admin port and the established connection still answer.
    const ready = await fetch(`http://127.0.0.1:${proc.adminPort}/readyz`, {
      signal: AbortSignal.timeout(3000),
    });
    expect(ready.status).toBe(200);
    const onEstablished = await new Promise<string>((resolve) => {
      const s = established.request({
        ":method": "POST",
        ":path": AUTHORIZE,
        "content-type": "application/grpc",
        te: "trailers",
      });
      s.on("trailers", (t) => resolve(String(t["grpc-status"])));
      s.on("error", (e) => resolve(e.message));
      s.on("data", () => {});
      s.end(grpcFrame(AUTHORIZE_BODY));
    });
    expect(onEstablished).toBe("0");
    established.close();
    for (const c of flood) c.socket.destroy();
    await within(3000, () => false);
    expect(await doorsAnswer(proc)).toEqual(ALL_DOORS_OK);
  }, 30_000);
});

// 256: Node loads Tollgate's modules concurrently and needs about 180
// descriptors to start (docs/security-bounds.md).
describe("a flood of slow connections under a 256-descriptor limit", () => {
  let proc: TollgateProcess;
  beforeAll(async () => {
    proc = await startTollgateProcess({ TOLLGATE_HEADER_TIMEOUT_MS: "3000" }, { fdLimit: 256 });
  });
  afterAll(async () => {
    await proc?.stop();
  });

  it("keeps the admin port and the descriptor count in bounds with 400 connections sending G then nothing", async () => {
    const pid = proc.child.pid ?? 0;
    const flood = [];
    for (let i = 0; i < 400; i++) {
      const c = await rawConnection(i % 2 === 0 ? proc.port : proc.httpPort).catch(() => null);
      c?.socket.write("G");
      if (c) flood.push(c);
    }
    await sleep(300);
    expect(openFds(pid)).toBeLessThan(256);
    const ready = await fetch(`http://127.0.0.1:${proc.adminPort}/readyz`, {
      signal: AbortSignal.timeout(3000),
    });
    expect(ready.status).toBe(200);
    // Once the slow ones are timed out, every door answers again.
    await sleep(4000);
    expect(await doorsAnswer(proc)).toEqual(ALL_DOORS_OK);
    for (const c of flood) c.socket.destroy();
    const r = await rawGrpc(proc.url, AUTHORIZE, grpcFrame(AUTHORIZE_BODY), {}, 5000);
    expect(r.grpcStatus).toBe(0);
    // The default cap (1000) is lowered below the descriptor limit, and says so.
    expect(
      proc.logs.some(
        (l) => String(l.msg).includes("TOLLGATE_MAX_CONNECTIONS") && l.level === "warn",
      ),
    ).toBe(true);
  }, 60_000);
});
