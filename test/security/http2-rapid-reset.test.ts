/**
 * HTTP/2 rapid reset (CVE-2023-44487) against the built server, on the main
 * port (sniffer → grpc-js) and the HTTP port (sniffer → connect-node h2c):
 * streams opened and cancelled at once. The connection must be cut off early
 * (GOAWAY, then closed by the server after a short grace), no descriptor may
 * be left behind when the attacker leaves, and under a small descriptor limit
 * every door — gRPC, Connect, /readyz — must still answer afterwards.
 */

import { constants } from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";
import { sleep } from "./support.js";
import {
  ALL_DOORS_OK,
  doorsAnswer,
  HPACK_GET,
  h2frame,
  heldInFlight,
  metricValue,
  openFds,
  rapidReset,
  rawH2,
  rstStreamFrame,
  within,
} from "./transport-attacks.js";

/** Streams per attacking connection: past nghttp2's own limit (1000), which sends GOAWAY but never closes. */
const STREAMS = 1500;

describe("rapid reset", () => {
  let proc: TollgateProcess;
  beforeAll(async () => {
    proc = await startTollgateProcess({});
  });
  afterAll(async () => {
    await proc?.stop();
  });

  for (const port of ["main", "http"] as const) {
    it(`cuts off the connection early on the ${port} port and leaves no descriptor behind`, async () => {
      const target = port === "main" ? proc.port : proc.httpPort;
      const before = openFds(proc.child.pid ?? 0);
      const runs = [];
      for (let i = 0; i < 10; i++) runs.push(await rapidReset(target, STREAMS, 3000));
      // The server itself closed every connection, after GOAWAY
      // ENHANCE_YOUR_CALM (11) sent well before nghttp2's own limit (1000).
      // (A client busy writing may be gone before it reads the GOAWAY.)
      expect(runs.map((r) => r.closedByServer)).toEqual(runs.map(() => true));
      const told = runs.filter((r) => r.goaway !== undefined);
      expect(told.length).toBeGreaterThan(0);
      for (const r of told)
        expect({ goaway: r.goaway, early: (r.processed ?? 0) < 1000 }).toEqual({
          goaway: 11,
          early: true,
        });
      const settled = await within(5000, () => openFds(proc.child.pid ?? 0) <= before + 2);
      expect({ settled, fds: openFds(proc.child.pid ?? 0), before }).toMatchObject({
        settled: true,
      });
      expect(
        await metricValue(proc, "tollgate_transport_rapid_reset_cutoffs_total", { port }),
      ).toBe(10);
      expect(proc.logs.some((l) => String(l.msg).includes("rapid reset"))).toBe(true);
      expect(await heldInFlight(proc)).toEqual({ requests: 0, bodyBytes: 0 });
      expect(await doorsAnswer(proc)).toEqual(ALL_DOORS_OK);
    }, 60_000);
  }
});

describe("resets the engines never see", () => {
  /** Short: a quiet connection is pinged after a quarter of it, and dropped if it does not answer in as long. */
  const IDLE_TIMEOUT_MS = 4000;
  let proc: TollgateProcess;
  beforeAll(async () => {
    proc = await startTollgateProcess({ TOLLGATE_IDLE_TIMEOUT_MS: String(IDLE_TIMEOUT_MS) });
  });
  afterAll(async () => {
    await proc?.stop();
  });

  it("survives streams reset with every error code, before the engine could take them", async () => {
    const codes = [
      constants.NGHTTP2_CANCEL,
      constants.NGHTTP2_PROTOCOL_ERROR,
      constants.NGHTTP2_INTERNAL_ERROR,
      constants.NGHTTP2_ENHANCE_YOUR_CALM,
      constants.NGHTTP2_REFUSED_STREAM,
    ];
    for (const port of [proc.port, proc.httpPort]) {
      for (const code of codes) {
        const c = await rawH2(port);
        let id = 1;
        // HEADERS and RST_STREAM in one write: the stream is reset before
        // Node hands it to anyone.
        for (let i = 0; i < 60; i++, id += 2) {
          c.write(Buffer.concat([h2frame(0x1, 0x4, id, HPACK_GET), rstStreamFrame(id, code)]));
        }
        await sleep(100);
        c.leave();
      }
    }
    expect(proc.child.exitCode).toBeNull();
    expect(await heldInFlight(proc)).toEqual({ requests: 0, bodyBytes: 0 });
    expect(await doorsAnswer(proc)).toEqual(ALL_DOORS_OK);
  });

  for (const port of ["main", "http"] as const) {
    it(`closes a connection nghttp2 gave up on (RST_STREAM flood on a closed stream) on the ${port} port`, async () => {
      // nghttp2 counts RST_STREAM frames for streams already closed too; past
      // its limit it sends GOAWAY and stops reading, and Node 20 then keeps the
      // socket forever. No stream is left to count: the PING probe finds it.
      const c = await rawH2(port === "main" ? proc.port : proc.httpPort);
      c.write(h2frame(0x1, 0x5, 1, HPACK_GET)); // a complete request on stream 1
      await sleep(200);
      for (let i = 0; i < 1200; i++) c.write(rstStreamFrame(1, constants.NGHTTP2_CANCEL));
      // Pinged after a quarter of the idle timeout, dropped after as long
      // again: before the idle timeout could have closed it.
      const closed = await within(IDLE_TIMEOUT_MS - 500, () => c.closed());
      c.leave();
      // (Node 26 destroys such a session by itself; Node 20 needs the probe.)
      expect(closed).toBe(true);
      expect(c.frameTypes).toContain(0x4); // the server did speak HTTP/2 first
      expect(proc.child.exitCode).toBeNull();
    }, 20_000);
  }
});

// 256: Node loads Tollgate's modules concurrently and needs about 180
// descriptors to start (docs/security-bounds.md).
describe("rapid reset under a 256-descriptor limit", () => {
  let proc: TollgateProcess;
  beforeAll(async () => {
    proc = await startTollgateProcess({}, { fdLimit: 256 });
  });
  afterAll(async () => {
    await proc?.stop();
  });

  it("keeps every door answering after 300 attacking connections (more than the limit)", async () => {
    // Four attackers at a time, alternating ports: 300 connections would
    // exhaust the descriptors if each left one behind.
    const ports = [proc.port, proc.httpPort];
    let next = 0;
    const attacker = async () => {
      while (next < 300) {
        const i = next++;
        await rapidReset(ports[i % 2] ?? proc.port, STREAMS, 0).catch(() => undefined);
      }
    };
    await Promise.all([attacker(), attacker(), attacker(), attacker()]);
    // On a loaded machine the server may still be working through what the
    // attackers sent; every connection must be gone once it has.
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if ((await metricValue(proc, "tollgate_transport_connections")) === 0) break;
      await sleep(250);
    }
    expect(await metricValue(proc, "tollgate_transport_connections")).toBe(0);
    expect(openFds(proc.child.pid ?? 0)).toBeLessThan(64);
    expect(await doorsAnswer(proc)).toEqual(ALL_DOORS_OK);
  }, 120_000);
});
