/** The middleware contract on a real Fastify 5 server (see helpers/middleware-contract.ts). */
import { Writable } from "node:stream";
import Fastify, { type FastifyReply, type FastifyRequest } from "fastify";
import { describe } from "vitest";
import { tollgateFastify } from "../src/fastify.js";
import { middlewareContract } from "./helpers/middleware-contract.js";

const echo = async (request: FastifyRequest, reply: FastifyReply) => {
  const t = request.tollgate;
  reply.code(request.method === "POST" ? 201 : 200);
  return {
    identity: t?.identity ?? null,
    decided: t?.decided ?? null,
    endpoint: t?.endpoint ?? null,
  };
};

describe("Fastify", () => {
  middlewareContract(async (client, options) => {
    let out = "";
    const stream = new Writable({
      write(chunk, _enc, done) {
        out += String(chunk);
        done();
      },
    });
    const app = Fastify({ logger: { level: "info", stream } });
    await app.register(tollgateFastify, { client, ...options });
    app.get("/healthz", echo);
    app.get("/public/info", echo);
    app.get("/v1/orders", echo);
    app.post("/v1/orders", echo);
    app.get("/admin", { config: { tollgate: { scopes: ["admin"] } } }, echo);
    app.get("/reports/daily", { config: { tollgate: { endpoint: "list-orders" } } }, echo);
    app.get("/broken", { config: { tollgate: { endpoint: "no-such-endpoint" } } }, echo);
    // The handler reports a cost known only now (matches no policy endpoint).
    app.get("/v1/report", async (request: FastifyRequest<{ Querystring: { cost: string } }>) => {
      const r = await request.tollgate?.reportUsage(Number(request.query.cost));
      return { duplicate: r?.duplicate ?? null, limits: r?.limits.length ?? null };
    });
    const url = await app.listen({ port: 0, host: "127.0.0.1" });
    return { url, output: () => out, close: () => app.close() };
  });
});
