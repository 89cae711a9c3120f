/**
 * Ports at start, through the built server: every taken port is reported in
 * one message, each with its setting; two Tollgate settings naming the same
 * port are refused saying which.
 */
import { createServer, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli } from "../helpers/clients.js";

let squatters: Server[] = [];
const ports: number[] = [];
beforeAll(async () => {
  squatters = [createServer(), createServer()];
  for (const s of squatters) {
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    ports.push((s.address() as { port: number }).port);
  }
});
afterAll(async () => {
  await Promise.all(squatters.map((s) => new Promise((r) => s.close(r))));
});

const serve = (env: Record<string, string>) =>
  cli(["serve"], {
    TOLLGATE_ADDR: "127.0.0.1:0",
    TOLLGATE_HTTP_ADDR: "127.0.0.1:0",
    TOLLGATE_ADMIN_ADDR: "127.0.0.1:0",
    ...env,
  });

describe("tollgate serve: ports", () => {
  it("reports every taken port in one message, each with its own setting (exit 2)", async () => {
    const r = await serve({
      TOLLGATE_HTTP_ADDR: `127.0.0.1:${ports[0]}`,
      TOLLGATE_ADMIN_ADDR: `127.0.0.1:${ports[1]}`,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `tollgate: cannot listen: TOLLGATE_HTTP_ADDR (127.0.0.1:${ports[0]}): the port is taken (EADDRINUSE); TOLLGATE_ADMIN_ADDR (127.0.0.1:${ports[1]}): the port is taken (EADDRINUSE)`,
    );
    expect(r.stderr).not.toContain("TOLLGATE_ADDR or TOLLGATE_HTTP_ADDR");
  });

  it("refuses two settings naming the same port, saying which (exit 2)", async () => {
    const same = await serve({
      TOLLGATE_ADDR: "127.0.0.1:50999",
      TOLLGATE_ADMIN_ADDR: "127.0.0.1:50999",
    });
    expect(same.code).toBe(2);
    expect(same.stderr).toContain(
      "TOLLGATE_ADDR (127.0.0.1:50999) and TOLLGATE_ADMIN_ADDR (127.0.0.1:50999) name the same port",
    );
    const wildcard = await serve({
      TOLLGATE_ADDR: "127.0.0.1:50998",
      TOLLGATE_HTTP_ADDR: "0.0.0.0:50998",
    });
    expect(wildcard.code).toBe(2);
    expect(wildcard.stderr).toContain(
      "TOLLGATE_ADDR (127.0.0.1:50998) and TOLLGATE_HTTP_ADDR (0.0.0.0:50998) name the same port",
    );
  });
});
