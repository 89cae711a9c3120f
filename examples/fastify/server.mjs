// A Fastify app protected by Tollgate. From the repository root, with Tollgate
// running (`npm start`) and the client built
// (`npm ci --prefix clients/typescript && npm run build --prefix clients/typescript`):
//
//   node examples/fastify/server.mjs
//
// In your own app the imports are simply
//   import Fastify from "fastify";
//   import { createTollgateClient } from "@tollgate/client";
//   import tollgatePlugin from "@tollgate/client/fastify";
// here fastify comes from clients/typescript's install, so the example needs none of its own.
import { createRequire } from "node:module";
import tollgatePlugin from "../../clients/typescript/dist/fastify.js";
import { createTollgateClient } from "../../clients/typescript/dist/index.js";

const require = createRequire(new URL("../../clients/typescript/package.json", import.meta.url));
const Fastify = require("fastify");

// TOLLGATE_SERVER (default http://127.0.0.1:50051) and TOLLGATE_MANAGEMENT_TOKEN[_FILE] are read here.
const tollgate = createTollgateClient();
const app = Fastify({ logger: true });

// Every route is authorized (and rate-limited) by Tollgate, except the skip list.
await app.register(tollgatePlugin, { client: tollgate, skip: ["/healthz"] });
app.addHook("onClose", async () => tollgate.close());

app.get("/healthz", async () => "ok\n");
app.get("/v1/orders", async (request) => ({
  owner: request.tollgate?.identity?.owner ?? null,
  orders: [],
}));
// A route with its own scope, checked on top of the policy's endpoint scopes.
app.delete(
  "/v1/orders/:id",
  { config: { tollgate: { scopes: ["orders:admin"] } } },
  async (request) => ({
    deleted: request.params.id,
    by: request.tollgate?.identity?.keyId ?? null,
  }),
);

const url = await app.listen({ port: Number(process.env.PORT ?? 3000), host: "127.0.0.1" });
console.log(`fastify example listening on ${url}`);
process.once("SIGTERM", () => app.close());
