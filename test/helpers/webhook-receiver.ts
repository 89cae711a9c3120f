/** A real HTTP receiver on 127.0.0.1 for webhook tests: records every delivery. */
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";

/** One delivery as received. */
export interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A running receiver. */
export interface WebhookReceiver {
  url: string;
  deliveries: Delivery[];
  /** Status answered (default 200). */
  status: number;
  close(): Promise<void>;
}

/** Starts a receiver on a free loopback port. */
export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const r: WebhookReceiver = {
    url: "",
    deliveries: [],
    status: 200,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
  const server: Server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => {
      body += c;
    });
    req.on("end", () => {
      r.deliveries.push({ headers: req.headers, body });
      res.writeHead(r.status).end();
    });
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const addr = server.address();
  r.url = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}/hook`;
  return r;
}
