// An Express app protected by Tollgate. From the repository root, with Tollgate
// running (`npm start`) and the client built
// (`npm ci --prefix clients/typescript && npm run build --prefix clients/typescript`):
//
//   node examples/express/server.mjs
//
// In your own app the two imports are simply
//   import express from "express";
//   import { createTollgateClient } from "@tollgate/client";
// here express comes from clients/typescript's install, so the example needs none of its own.
import { createRequire } from "node:module";
import { createTollgateClient } from "../../clients/typescript/dist/index.js";

const require = createRequire(new URL("../../clients/typescript/package.json", import.meta.url));
const express = require("express");

// TOLLGATE_SERVER (default http://127.0.0.1:50051) and TOLLGATE_MANAGEMENT_TOKEN[_FILE] are read here.
const tollgate = createTollgateClient();
const { protect } = tollgate.express();

const app = express();
app.get("/healthz", (_req, res) => res.send("ok\n"));
// Every request below is authorized (and rate-limited) by Tollgate.
app.use(tollgate.express());
app.get("/v1/orders", (req, res) => {
  res.json({ owner: req.tollgate.identity?.owner ?? null, orders: [] });
});
// A route with its own scope, checked on top of the policy's endpoint scopes.
app.delete("/v1/orders/:id", protect({ scopes: ["orders:admin"] }), (req, res) => {
  res.json({ deleted: req.params.id, by: req.tollgate.identity?.keyId ?? null });
});

const server = app.listen(Number(process.env.PORT ?? 3000), "127.0.0.1", () => {
  console.log(`express example listening on http://127.0.0.1:${server.address().port}`);
});
process.once("SIGTERM", () => {
  server.close();
  server.closeAllConnections();
  tollgate.close();
});
