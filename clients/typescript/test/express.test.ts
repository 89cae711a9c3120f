/** The middleware contract on a real Express 5 server (see helpers/middleware-contract.ts). */
import type { AddressInfo } from "node:net";
import express, { type Request, type Response } from "express";
import { describe } from "vitest";
import { middlewareContract } from "./helpers/middleware-contract.js";

const echo = (req: Request, res: Response) => {
  const t = req.tollgate;
  res.status(req.method === "POST" ? 201 : 200).json({
    identity: t?.identity ?? null,
    decided: t?.decided ?? null,
    endpoint: t?.endpoint ?? null,
  });
};

describe("Express", () => {
  middlewareContract(async (client, options) => {
    const app = express();
    const tollgate = client.express({ ...options, skip: [...(options.skip ?? []), "/reports/*"] });
    const { protect } = tollgate;
    app.use(tollgate);
    app.get("/healthz", echo);
    app.get("/public/info", echo);
    app.get("/v1/orders", echo);
    app.post("/v1/orders", echo);
    app.get("/admin", protect({ scopes: ["admin"] }), echo);
    // Skipped by the global middleware, so protect() charges this route's named endpoint.
    app.get("/reports/daily", protect({ endpoint: "list-orders" }), echo);
    app.get("/broken", protect({ endpoint: "no-such-endpoint" }), echo);
    // The handler reports a cost known only now (matches no policy endpoint).
    app.get("/v1/report", async (req: Request, res: Response) => {
      const r = await req.tollgate?.reportUsage(Number(req.query.cost));
      res.json({ duplicate: r?.duplicate ?? null, limits: r?.limits.length ?? null });
    });
    const server = app.listen(0, "127.0.0.1");
    await new Promise<void>((r) => server.once("listening", () => r()));
    const { port } = server.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${port}`,
      output: () => "",
      close: async () => {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      },
    };
  });
});
