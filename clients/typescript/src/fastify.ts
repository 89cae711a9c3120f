/**
 * The Fastify plugin: `app.register(tollgate, { client })` (from
 * `@tollgate/client/fastify`) protects every route in an `onRequest` hook,
 * before the body is read. Route options come from the route's
 * `config.tollgate` (`{ endpoint, scopes }`, or `false` to leave the route
 * unprotected); the identity is `request.tollgate` (decorated with
 * `decorateRequest`, null on skipped routes). Denials are answered with the
 * decision's status and headers and an `application/problem+json` body.
 */
import type { FastifyPluginAsync, FastifyReply } from "fastify";
import fp from "fastify-plugin";
import type { TollgateClient } from "./client.js";
import {
  createDecider,
  groupHeaders,
  type Rejection,
  type TollgateContext,
  type TollgateMiddlewareOptions,
  type TollgateRouteOptions,
} from "./middleware/decide.js";
import { PROBLEM_CONTENT_TYPE } from "./middleware/problem.js";

declare module "fastify" {
  interface FastifyRequest {
    /** Set by the Tollgate plugin on requests it let through; null on skipped paths and unprotected routes. */
    tollgate: TollgateContext | null;
  }
  interface FastifyContextConfig {
    /** Tollgate's options for this route, or `false` to leave it unprotected. */
    tollgate?: TollgateRouteOptions | false;
  }
}

/** Options of the Fastify plugin. */
export interface FastifyTollgateOptions extends TollgateMiddlewareOptions {
  /** The client the plugin asks (from `createTollgateClient`). */
  client: TollgateClient;
}

const plugin: FastifyPluginAsync<FastifyTollgateOptions> = async (app, opts) => {
  const { client, ...options } = opts;
  if (!client) throw new TypeError("tollgate: the Fastify plugin needs { client }");
  const d = createDecider(client, options);
  app.decorateRequest("tollgate", null);
  app.addHook("onRequest", async (request, reply) => {
    const route = request.routeOptions.config?.tollgate;
    if (route === false) return;
    const facts = d.facts(request.raw, request.url);
    if ("kind" in facts) return send(reply, facts);
    if (d.skips(facts.path)) return;
    const outcome = await d.decide(facts, route);
    if (outcome.kind === "reject") return send(reply, outcome);
    for (const [name, values] of groupHeaders(outcome.headers)) {
      reply.header(name, values.length === 1 ? values[0] : values);
    }
    request.tollgate = outcome.context;
  });
  if (d.reportsUsage) {
    app.addHook("onResponse", async (request, reply) => {
      if (request.tollgate) d.afterResponse(request.tollgate, request.raw, reply.raw);
    });
  }
};

function send(reply: FastifyReply, o: Rejection): FastifyReply {
  for (const [name, values] of groupHeaders(o.headers)) {
    reply.header(name, values.length === 1 ? values[0] : values);
  }
  return reply.code(o.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(o.problem));
}

/**
 * The Tollgate Fastify plugin (Fastify 5). Registered with fastify-plugin, so
 * its hook covers every route of the instance it is registered on.
 */
export const tollgateFastify = fp(plugin, { fastify: "5.x", name: "@tollgate/client" });
export default tollgateFastify;
export type { TollgateContext, TollgateRouteOptions } from "./middleware/decide.js";
