/**
 * The memory target: send many *distinct* requests (h2load repeats one body,
 * so this is a small Node HTTP/2 client on one connection with a fixed number
 * of streams in flight) and watch Tollgate's resident set. Each request is
 * encoded on the fly; a run stops after `count` requests or `timeLimitS`,
 * whichever comes first.
 */
import { connect } from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  AuthorizeRequestSchema,
  CheckRateLimitRequestSchema,
} from "../src/gen/tollgate/v1/tollgate_service_pb.js";
import { generateSecret } from "../src/keys/key-format.js";
import { AUTHORIZE_PATH, CHECK_RATE_LIMIT_PATH, CLIENT_IP, grpcFrame } from "./messages.js";
import { procStats } from "./processes.js";

/** One point of a memory run. */
export interface MemorySample {
  sent: number;
  rssBytes: number;
}

/** What a memory run measured. */
export interface MemoryResult {
  name: string;
  sent: number;
  /** Answers with a grpc-status other than 0, or no answer. */
  errors: number;
  /** Times the server ended the connection (GOAWAY) and the client reconnected. */
  reconnects: number;
  seconds: number;
  /** VmHWM of the server after the run. */
  peakRssBytes: number;
  /** RSS every ~10 % of the way. */
  samples: MemorySample[];
}

/** Distinct requests: well-formed unknown keys (negative cache) or fresh subjects. */
export type DistinctKind = "unknown-keys" | "subjects";

function nextBody(kind: DistinctKind, i: number): { path: string; body: Buffer } {
  if (kind === "unknown-keys") {
    const msg = create(AuthorizeRequestSchema, {
      apiKey: generateSecret("live"),
      method: "GET",
      path: "/v1/items/42",
      clientIp: CLIENT_IP,
    });
    return { path: AUTHORIZE_PATH, body: grpcFrame(toBinary(AuthorizeRequestSchema, msg)) };
  }
  const msg = create(CheckRateLimitRequestSchema, {
    subject: `subject-${i}`,
    tier: "anon",
    endpoint: "items",
  });
  return {
    path: CHECK_RATE_LIMIT_PATH,
    body: grpcFrame(toBinary(CheckRateLimitRequestSchema, msg)),
  };
}

/** Sends up to `count` distinct requests to the gRPC port `base` of process `pid`. */
export function distinctRun(o: {
  base: string;
  pid: number;
  kind: DistinctKind;
  count: number;
  timeLimitS: number;
  streams: number;
}): Promise<MemoryResult> {
  return new Promise((resolve, reject) => {
    // A server may end a long-lived connection (GOAWAY); the run then reconnects.
    let reconnects = 0;
    const open = () => {
      const s = connect(o.base);
      s.on("error", () => {});
      s.on("goaway", () => {
        if (session === s && !done) {
          reconnects++;
          session = open();
        }
      });
      return s;
    };
    let session = open();
    const started = Date.now();
    const deadline = started + o.timeLimitS * 1000;
    const samples: MemorySample[] = [];
    const step = Math.max(1, Math.floor(o.count / 10));
    let sent = 0;
    let finished = 0;
    let errors = 0;
    let inflight = 0;
    let done = false;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      session.close();
      if (err) {
        reject(err);
        return;
      }
      samples.push({ sent: finished, rssBytes: procStats(o.pid).rss });
      resolve({
        name: o.kind,
        sent: finished,
        errors,
        reconnects,
        seconds: (Date.now() - started) / 1000,
        peakRssBytes: procStats(o.pid).peakRss,
        samples,
      });
    };
    const launch = () => {
      while (!done && inflight < o.streams && sent < o.count && Date.now() < deadline) {
        const { path, body } = nextBody(o.kind, sent);
        sent++;
        inflight++;
        if (session.closed || session.destroyed) {
          reconnects++;
          session = open();
        }
        let stream: ReturnType<typeof session.request>;
        try {
          stream = session.request({
            ":method": "POST",
            ":path": path,
            "content-type": "application/grpc",
            te: "trailers",
          });
        } catch {
          reconnects++;
          session = open();
          sent--;
          inflight--;
          if (reconnects > 1_000) {
            finish(new Error("too many reconnects"));
            return;
          }
          continue;
        }
        let status: string | undefined;
        stream.on("response", (h) => {
          if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
        });
        stream.on("trailers", (t) => {
          if (t["grpc-status"] !== undefined) status = String(t["grpc-status"]);
        });
        stream.on("data", () => {});
        stream.on("error", () => {});
        const settle = () => {
          inflight--;
          finished++;
          if (status !== "0") errors++;
          if (finished % step === 0)
            samples.push({ sent: finished, rssBytes: procStats(o.pid).rss });
          if (inflight === 0 && (sent >= o.count || Date.now() >= deadline)) finish();
          else launch();
        };
        stream.once("close", settle);
        stream.end(body);
      }
    };
    launch();
  });
}
