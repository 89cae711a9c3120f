/**
 * The web console's routes on the HTTP port (TOLLGATE_CONSOLE=true): its
 * files under /console/, and the few endpoints the Connect API cannot serve —
 * login (a session cookie for EventSource), the live decision stream (server-
 * sent events from the DecisionFeed) and the overview's numbers. Keys, usage,
 * events and blocks are read and changed by the page through KeyService over
 * Connect JSON on this same origin, with the management token as a Bearer
 * header; nothing here is a second management API.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { ConnectError } from "@connectrpc/connect";
import type { DecisionFilter } from "../decision/decision-feed.js";
import { authenticateManagement } from "../services/management-gate.js";
import type { ServiceDeps } from "../services/service-deps.js";
import { type ConsoleAsset, loadConsoleAssets } from "./console-assets.js";
import { consoleHeaders, sameOrigin } from "./console-headers.js";
import { ConsoleSessions, SESSION_COOKIE, SESSION_TTL_MS } from "./console-sessions.js";
import { DenialTally } from "./denial-tally.js";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;
type Route = (req: Req, res: Res) => Promise<void> | void;

/** The console's root path. */
export const CONSOLE_PATH = "/console/";
/** Seconds between keep-alive comments on the decision stream (proxies drop idle streams). */
const HEARTBEAT_MS = 15_000;

/** Options of createConsoleRoutes. */
export interface ConsoleRoutesOptions {
  deps: ServiceDeps;
  /** The built files; default: read from dist/console-web/. */
  assets?: Map<string, ConsoleAsset>;
}

/** The console: its routes (path → handler, for createHttpRoutes) and what it holds. */
export interface ConsoleRoutes {
  routes: Record<string, Route>;
  sessions: ConsoleSessions;
  tally: DenialTally;
  /** Stops counting (ends the overview's feed subscription). */
  close(): void;
}

/** Builds the console's routes over the service dependencies. */
export function createConsoleRoutes(o: ConsoleRoutesOptions): ConsoleRoutes {
  const d = o.deps;
  const assets = o.assets ?? loadConsoleAssets();
  const sessions = new ConsoleSessions(() => d.clock.now());
  const tally = new DenialTally();
  // The overview's counters listen to the feed for as long as the console is on.
  const counting = d.feed.subscribe({});
  void (async () => {
    for (;;) {
      const line = await counting?.next();
      if (!line) return;
      tally.add(line);
    }
  })();

  const file = (asset: ConsoleAsset | undefined): Route => {
    return (_req, res) => {
      if (!asset) {
        send(res, 503, { error: "the console is not built: run npm run build" });
        return;
      }
      res.writeHead(200, consoleHeaders(asset.type, true));
      res.end(asset.body);
    };
  };
  const routes: Record<string, Route> = {};
  for (const [path, asset] of assets) routes[path] = file(asset);
  if (!routes[CONSOLE_PATH]) routes[CONSOLE_PATH] = file(undefined);
  routes["/console"] = (_req, res) => {
    res.writeHead(308, { ...consoleHeaders("text/plain", false), location: CONSOLE_PATH });
    res.end();
  };

  /** Wraps an API handler: same origin only, POST where it changes something. */
  const api =
    (method: string, fn: (req: Req, res: Res) => Promise<void> | void): Route =>
    (req, res) => {
      if (!sameOrigin(req.headers)) return send(res, 403, { error: "cross-origin request" });
      if (req.method !== method) return send(res, 405, { error: `use ${method}` });
      return fn(req, res);
    };
  /** The session of a request, or undefined after answering 401. */
  const session = (req: Req, res: Res) => {
    const s = sessions.find(req.headers.cookie);
    if (!s) send(res, 401, { error: "log in first" });
    return s;
  };

  routes["/console/api/login"] = api("POST", async (req, res) => {
    const headers = new Headers();
    for (const h of ["authorization", "host", "origin"]) {
      const v = req.headers[h];
      if (typeof v === "string") headers.set(h, v);
    }
    let name: string;
    try {
      name = await authenticateManagement(d, headers, "ConsoleLogin", "read");
    } catch (err) {
      const e = ConnectError.from(err);
      return send(res, 401, { error: e.rawMessage });
    }
    const readOnly = d.management.readOnly(name);
    const id = sessions.open(name, readOnly);
    res.setHeader(
      "set-cookie",
      `${SESSION_COOKIE}=${id}; Path=/console/api/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_TTL_MS / 1000}`,
    );
    send(res, 200, { name, readOnly, open: d.management.open });
  });

  routes["/console/api/logout"] = api("POST", (req, res) => {
    sessions.close(req.headers.cookie);
    res.setHeader(
      "set-cookie",
      `${SESSION_COOKIE}=; Path=/console/api/; HttpOnly; SameSite=Strict; Max-Age=0`,
    );
    send(res, 200, {});
  });

  routes["/console/api/overview"] = api("GET", async (req, res) => {
    if (!session(req, res)) return;
    const breakers = (await d.metrics.breakerState.get()).values.map((v) => ({
      breaker: String(v.labels.breaker ?? "store"),
      state: v.value === 2 ? "open" : v.value === 1 ? "half-open" : "closed",
    }));
    const p = d.policy();
    send(res, 200, {
      ...tally.snapshot(d.clock.now()),
      breakers,
      policy: { source: p.source, tiers: [...p.tiers.keys()] },
      liveSubscribers: d.feed.size,
    });
  });

  routes["/console/api/decisions"] = api("GET", (req, res) => {
    if (!session(req, res)) return;
    const q = new URL(req.url ?? "/", "http://console").searchParams;
    const filter: DecisionFilter = {};
    const key = q.get("key");
    if (key) filter.keyId = key.slice(0, 64);
    if (q.get("denied") === "1") filter.deniedOnly = true;
    const sub = d.feed.subscribe(filter);
    if (!sub) return send(res, 503, { error: "too many live viewers; try again later" });
    res.writeHead(200, {
      ...consoleHeaders("text/event-stream; charset=utf-8", false),
      "x-accel-buffering": "no",
    });
    // Both response kinds write strings the same way; TypeScript cannot unify their overloads.
    const write = (s: string) => (res as ServerResponse).write(s);
    write(": live decisions\n\n");
    const beat = setInterval(() => write(": keep-alive\n\n"), HEARTBEAT_MS);
    beat.unref();
    // The subscription ends with the connection, however it ends.
    res.once("close", () => {
      clearInterval(beat);
      sub.close();
    });
    void (async () => {
      let reported = 0;
      for (;;) {
        const line = await sub.next();
        if (!line) return;
        if (sub.dropped !== reported) {
          reported = sub.dropped;
          write(`event: dropped\ndata: ${reported}\n\n`);
        }
        // An access line holds no secret (decision/decision-feed.ts).
        write(`event: decision\ndata: ${JSON.stringify(line)}\n\n`);
      }
    })();
  });

  return { routes, sessions, tally, close: () => counting?.close() };
}

function send(res: Res, status: number, body: unknown): void {
  res.writeHead(status, consoleHeaders("application/json", false));
  res.end(JSON.stringify(body));
}
