/**
 * The live views end to end on the built server: `tollgate decisions tail
 * --follow --key …` prints a line when an Authorize happens and ends on
 * SIGINT; `tollgate decisions tail` prints the recent past and exits;
 * `tollgate events list --follow` shows an event recorded after it started;
 * and `buf curl` (a client no one here wrote) streams both RPCs over gRPC on
 * the main port and Connect / gRPC-Web on the HTTP port.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Severity } from "../../src/gen/tollgate/v1/event_pb.js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { bufCurl } from "../helpers/clients.js";
import { CLI, startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const TOKEN = "live-tail-e2e-management-token";
const auth = { headers: { authorization: `Bearer ${TOKEN}` } };
const run = promisify(execFile);
let proc: TollgateProcess;
let tollgate: ReturnType<typeof createClient<typeof TollgateService>>;
let keys: ReturnType<typeof createClient<typeof KeyService>>;

beforeAll(async () => {
  proc = await startTollgateProcess({
    TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
    TOLLGATE_EVENT_FLUSH_MS: "10",
    TOLLGATE_ACCESS_LOG: "false",
    TOLLGATE_LOG_LEVEL: "info",
  });
  const transport = createGrpcTransport({ baseUrl: proc.url });
  tollgate = createClient(TollgateService, transport);
  keys = createClient(KeyService, transport);
}, 30_000);

afterAll(async () => {
  await proc?.stop();
});

const cliEnv = () => ({
  PATH: process.env.PATH ?? "",
  TOLLGATE_SERVER: proc.url,
  TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
});

/** The CLI as a child process, with its output so far. */
function cli(args: string[]): { child: ChildProcess; out: () => string; exit: Promise<number> } {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: cliEnv(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (b: Buffer) => {
    out += b.toString();
  });
  child.stderr?.on("data", (b: Buffer) => {
    out += b.toString();
  });
  const exit = new Promise<number>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? (signal ? -1 : 0))),
  );
  return { child, out: () => out, exit };
}

/** Runs `step` until `done` holds (or 10 s pass). */
async function until(done: () => boolean, step: () => Promise<unknown> = async () => {}) {
  const deadline = Date.now() + 10_000;
  while (!done() && Date.now() < deadline) {
    await step();
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(done()).toBe(true);
}

describe("tollgate decisions tail", () => {
  it("--follow --key prints a line when an Authorize happens and ends on SIGINT", async () => {
    const mine = await keys.createKey({ owner: "tail" }, auth);
    const other = await keys.createKey({ owner: "other" }, auth);
    const id = mine.key?.id ?? "";
    const tail = cli(["decisions", "tail", "--follow", "--key", id, "--lines", "0"]);
    // The stream starts asynchronously: authorize until the first line shows.
    await until(
      () => tail.out().includes(id),
      async () => {
        await tollgate.authorize({ apiKey: other.secret });
        await tollgate.authorize({ apiKey: mine.secret, method: "GET", path: "/x" });
      },
    );
    const line = tail.out().split("\n")[0] ?? "";
    expect(line).toMatch(/^\d{4}-\d\d-\d\dT.*Z Authorize allow OK key=key_\w+ .*ms id=[0-9a-f]+$/);
    expect(tail.out()).not.toContain(other.key?.id ?? "-");
    expect(tail.out()).not.toContain(mine.secret);
    tail.child.kill("SIGINT");
    expect(await tail.exit).toBe(0);
  });

  it("--follow ends cleanly when the pipe it writes to closes (| head -n 1)", async () => {
    const pipeline = spawn(
      "bash",
      [
        "-c",
        `set -o pipefail; "${process.execPath}" "${CLI}" decisions tail --follow --lines 0 | head -n 1`,
      ],
      { env: cliEnv(), stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    pipeline.stdout?.on("data", (b: Buffer) => {
      out += b.toString();
    });
    let code: number | null | undefined;
    pipeline.once("exit", (c) => {
      code = c;
    });
    // head exits after one line; the tail sees EPIPE at its next line and stops.
    await until(
      () => code !== undefined,
      () => tollgate.authorize({}),
    );
    expect(out).toContain("MISSING_KEY");
    // pipefail: the tail itself exited 0.
    expect(code).toBe(0);
  });

  it("without --follow prints the most recent decisions (--json: one object a line) and exits", async () => {
    for (let i = 0; i < 3; i++) await tollgate.authorize({});
    const { stdout } = await run(
      process.execPath,
      [CLI, "decisions", "tail", "--denied", "--lines", "2", "--json"],
      { env: cliEnv() },
    );
    const lines = stdout.trim().split("\n");
    expect(lines).toHaveLength(2);
    for (const l of lines) expect(JSON.parse(l)).toMatchObject({ reason: "MISSING_KEY" });
  });

  it("refuses without a token, naming what to set", async () => {
    const e = await run(process.execPath, [CLI, "decisions", "tail"], {
      env: { ...cliEnv(), TOLLGATE_MANAGEMENT_TOKEN: "" },
    }).catch((err: { code: number; stderr: string }) => err);
    expect(e).toMatchObject({ code: 1 });
    expect((e as { stderr: string }).stderr).toContain("Unauthenticated");
  });
});

describe("tollgate events list --follow", () => {
  it("lists, then shows an event recorded after it started, and ends on SIGINT", async () => {
    const follow = cli(["events", "list", "--type", "follow_probe", "--follow"]);
    await until(() => follow.out().includes("no events") || follow.out().includes("follow_probe"));
    await tollgate.recordEvent({
      events: [{ id: "probe-1", customType: "follow_probe", subject: "late-subject" }],
    });
    await until(() => follow.out().includes("late-subject"));
    expect(follow.out()).toMatch(/Z {2}follow_probe {2}\w+ {2}\w+:late-subject/);
    follow.child.kill("SIGINT");
    expect(await follow.exit).toBe(0);
  });
});

describe("TailDecisions on the grpc-js fast path", () => {
  it("holds a reader that stops reading to its bounded queue, and counts what it lost", async () => {
    const abort = new AbortController();
    const stream = keys.tailDecisions({ follow: true }, { ...auth, signal: abort.signal });
    const it = stream[Symbol.asyncIterator]();
    // The first line proves the subscription; then the reader stops reading.
    const first = it.next();
    const deadline = Date.now() + 10_000;
    let settled = false;
    void first.then(() => {
      settled = true;
    });
    while (!settled && Date.now() < deadline) {
      await tollgate.authorize({});
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await first).value?.reason).toBe("MISSING_KEY");
    // Far more decisions than the stream's queue (1000) and HTTP/2's windows hold.
    const total = 6000;
    for (let i = 0; i < total / 20; i++)
      await Promise.all(Array.from({ length: 20 }, () => tollgate.authorize({})));
    // Read what the stream kept: the gap is reported, not replayed.
    let received = 0;
    let dropped = 0n;
    while (received + Number(dropped) < total) {
      const step = await it.next();
      if (step.done) break;
      received++;
      dropped += step.value.dropped;
    }
    abort.abort();
    // Anything the authorize loop above raced in before the first line is not counted.
    expect(received + Number(dropped)).toBeGreaterThanOrEqual(total);
    expect(dropped).toBeGreaterThan(0n);
    expect(received).toBeLessThan(total / 2);
  }, 60_000);
});

describe("buf curl streams both RPCs", () => {
  const tail = "tollgate.v1.KeyService/TailDecisions";
  const follow = "tollgate.v1.KeyService/FollowEvents";
  const h = ["-H", `authorization: Bearer ${TOKEN}`];

  it("TailDecisions over gRPC (main port), gRPC-Web and Connect (HTTP port)", async () => {
    await tollgate.authorize({});
    const body = JSON.stringify({ backlog: 3, deniedOnly: true });
    const runs = [
      ["--protocol", "grpc", "--http2-prior-knowledge", `${proc.url}/${tail}`],
      ["--schema", "proto", "--protocol", "grpcweb", `${proc.httpUrl}/${tail}`],
      ["--schema", "proto", "--protocol", "connect", `${proc.httpUrl}/${tail}`],
    ];
    for (const args of runs) {
      const r = await bufCurl([...h, "-d", body, ...args]);
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(0);
      // One JSON message after another.
      const messages = r.stdout.match(/"decisionId"/g) ?? [];
      expect(messages).toHaveLength(3);
      expect(r.stdout).toContain('"reason": "MISSING_KEY"');
    }
    const anon = await bufCurl(["-d", body, ...(runs[0] as string[])]);
    expect(anon.stderr).toMatch(/unauthenticated/i);
  });

  it("FollowEvents over gRPC and Connect ends at its limit after a new event", async () => {
    // From now: the event below is streamed however long the streams take to open.
    const body = JSON.stringify({
      customType: "curl_probe",
      limit: 1,
      startTime: new Date().toISOString(),
    });
    const streams = [
      bufCurl([
        ...h,
        "-d",
        body,
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        `${proc.url}/${follow}`,
      ]),
      bufCurl([
        ...h,
        "-d",
        body,
        "--schema",
        "proto",
        "--protocol",
        "connect",
        `${proc.httpUrl}/${follow}`,
      ]),
    ];
    await tollgate.recordEvent({
      events: [{ id: "curl-1", customType: "curl_probe", subject: "s", severity: Severity.LOW }],
    });
    for (const r of await Promise.all(streams)) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('"customType": "curl_probe"');
    }
  });
});
