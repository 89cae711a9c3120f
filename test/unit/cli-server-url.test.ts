/** One rule for where the server is: --server, TOLLGATE_SERVER, TOLLGATE_ADDR, the default. */
import { describe, expect, it } from "vitest";
import { serverUrl } from "../../src/cli/client.js";

describe("serverUrl", () => {
  it("prefers --server, then TOLLGATE_SERVER, then the server's own TOLLGATE_ADDR", () => {
    const env = { TOLLGATE_SERVER: "http://10.0.0.1:1", TOLLGATE_ADDR: "127.0.0.1:6000" };
    expect(serverUrl("http://flag:2", env)).toBe("http://flag:2");
    expect(serverUrl(undefined, env)).toBe("http://10.0.0.1:1");
    expect(serverUrl(undefined, { TOLLGATE_ADDR: "127.0.0.1:6000" })).toBe("http://127.0.0.1:6000");
    expect(serverUrl(undefined, {})).toBe("http://127.0.0.1:50051");
  });
  it("reaches a wildcard bind on loopback, and uses https when the server has TLS", () => {
    expect(serverUrl(undefined, { TOLLGATE_ADDR: "0.0.0.0:7000" })).toBe("http://127.0.0.1:7000");
    expect(serverUrl(undefined, { TOLLGATE_ADDR: "[::]:7000" })).toBe("http://[::1]:7000");
    expect(
      serverUrl(undefined, { TOLLGATE_ADDR: "0.0.0.0:7000", TOLLGATE_TLS_CERT_FILE: "/c.pem" }),
    ).toBe("https://127.0.0.1:7000");
  });
});
