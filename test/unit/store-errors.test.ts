/**
 * The store-error classifier over real error objects: ioredis's own errors
 * (made by real clients that cannot reach a server), Redis error replies as
 * ioredis hands them over, opossum's breaker errors, and plain bugs. Only
 * infrastructure failures are "unavailable".
 */
import { Redis, ReplyError } from "ioredis";
import CircuitBreaker from "opossum";
import { describe, expect, it } from "vitest";
import {
  StoreInternalError,
  StoreUnavailableError,
  unavailableKind,
} from "../../src/store/store-errors.js";
import { freePort } from "../helpers/free-port.js";

const reply = (message: string): Error => new ReplyError(message) as Error;
const rejection = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e,
  );

describe("unavailableKind", () => {
  it("Redis replies of a server that cannot serve now are unavailable (kind reply)", () => {
    for (const m of [
      "LOADING Redis is loading the dataset in memory",
      "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
      "READONLY You can't write against a read only replica.",
      "READONLY You can't write against a read only replica. script: 4f0b…, on @user_script:12.",
      "CLUSTERDOWN The cluster is down",
      "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
      "TRYAGAIN Multiple keys request during rehashing of slot",
      "MOVED 3999 127.0.0.1:6381",
      "ASK 3999 127.0.0.1:6381",
      "ERR Error running script (call to f_1): @user_script:1: @user_script: 1: -READONLY You can't write against a read only replica.",
      "ERR max number of clients reached",
    ]) {
      expect(unavailableKind(reply(m)), m).toBe("reply");
    }
  });

  it("an OOM refusal is kind oom, also from inside a script", () => {
    expect(unavailableKind(reply("OOM command not allowed when used memory > 'maxmemory'."))).toBe(
      "oom",
    );
    expect(
      unavailableKind(
        reply(
          "OOM command not allowed when used memory > 'maxmemory'. script: 9b1c…, on @user_script:20.",
        ),
      ),
    ).toBe("oom");
  });

  it("script errors, WRONGTYPE, NOSCRIPT and look-alikes are not unavailable", () => {
    for (const m of [
      "WRONGTYPE Operation against a key holding the wrong kind of value",
      "WRONGTYPE Operation against a key holding the wrong kind of value script: 1f2e…, on @user_script:40.",
      "ERR user_script:7: Script attempted to access nonexistent global variable 'x' script: 1f2e…, on @user_script:7.",
      "ERR Error running script (call to f_1): @user_script:3: user_script:3: attempt to compare nil with number",
      "NOSCRIPT No matching script. Please use EVAL.",
      "BUSYKEY Target key name already exists.",
      "BUSYGROUP Consumer Group name already exists",
      "ERR wrong number of arguments for 'evalsha' command",
    ]) {
      expect(unavailableKind(reply(m)), m).toBeUndefined();
    }
  });

  it("bugs and bad data are not unavailable", () => {
    expect(unavailableKind(new TypeError("cannot read properties of undefined"))).toBeUndefined();
    let parse: unknown;
    try {
      JSON.parse("{not json");
    } catch (e) {
      parse = e;
    }
    expect(unavailableKind(parse)).toBeUndefined();
    expect(unavailableKind(undefined)).toBeUndefined();
    expect(unavailableKind("a string")).toBeUndefined();
    expect(
      unavailableKind(new StoreInternalError("keys.get", reply("WRONGTYPE x"))),
    ).toBeUndefined();
  });

  it("a client whose connection is refused, closed or not writeable: kind connection", async () => {
    const port = await freePort();
    const refused = new Redis({ port, lazyConnect: true, retryStrategy: () => null });
    refused.on("error", () => {});
    const connectError = await rejection(refused.connect());
    expect(unavailableKind(connectError)).toBe("connection");
    refused.disconnect();

    const notWriteable = new Redis({ port, lazyConnect: true, enableOfflineQueue: false });
    notWriteable.on("error", () => {});
    const e1 = await rejection(notWriteable.get("k"));
    expect(String((e1 as Error).message)).toMatch(/Stream isn't writeable/);
    expect(unavailableKind(e1)).toBe("connection");
    notWriteable.disconnect();

    const closed = new Redis({ port, lazyConnect: true });
    closed.disconnect();
    const e2 = await rejection(closed.get("k"));
    expect(String((e2 as Error).message)).toMatch(/Connection is closed/);
    expect(unavailableKind(e2)).toBe("connection");

    const retries = new Redis({ port, maxRetriesPerRequest: 0, retryStrategy: () => 10 });
    retries.on("error", () => {});
    const e3 = await rejection(retries.get("k"));
    expect((e3 as Error).name).toBe("MaxRetriesPerRequestError");
    expect(unavailableKind(e3)).toBe("connection");
    retries.disconnect();
  });

  it("ioredis command timeouts and opossum timeouts and open breakers", async () => {
    expect(unavailableKind(new Error("Command timed out"))).toBe("timeout");
    const slow = new CircuitBreaker(() => new Promise((r) => setTimeout(r, 200)), {
      timeout: 5,
      resetTimeout: 60_000,
    });
    const timedOut = await rejection(slow.fire());
    expect(unavailableKind(timedOut)).toBe("timeout");
    slow.open();
    const open = await rejection(slow.fire());
    expect(unavailableKind(open)).toBe("breaker_open");
    slow.shutdown();
    expect(unavailableKind(new StoreUnavailableError("x", "oom"))).toBe("oom");
  });
});
