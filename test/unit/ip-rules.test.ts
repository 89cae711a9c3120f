/** Per-key IP allow and deny lists: parsing of CIDR entries and what they permit. */
import { describe, expect, it } from "vitest";
import { IpRules } from "../../src/keys/ip-rules.js";
import { normaliseIp, parseCidr } from "../../src/subjects/ip-address.js";

describe("parseCidr", () => {
  it("reads addresses and networks of both families", () => {
    expect(parseCidr("10.0.0.0/8")).toEqual({ address: "10.0.0.0", family: "ipv4", prefix: 8 });
    expect(parseCidr("192.0.2.7")).toEqual({ address: "192.0.2.7", family: "ipv4", prefix: 32 });
    expect(parseCidr("0.0.0.0/0")).toEqual({ address: "0.0.0.0", family: "ipv4", prefix: 0 });
    expect(parseCidr("2001:DB8::/32")).toEqual({
      address: "2001:db8::",
      family: "ipv6",
      prefix: 32,
    });
    expect(parseCidr("::1")).toEqual({ address: "::1", family: "ipv6", prefix: 128 });
    expect(parseCidr("::ffff:10.0.0.0/8")).toEqual({
      address: "10.0.0.0",
      family: "ipv4",
      prefix: 8,
    });
  });

  it.each([
    ["10.0.0.0/33", "prefix length must be 0..32"],
    ["10.0.0.0/-1", "prefix length must be 0..32"],
    ["10.0.0.0/", "prefix length must be 0..32"],
    ["10.0.0.0/8.0", "prefix length must be 0..32"],
    ["10.0.0.0/ 8", "prefix length must be 0..32"],
    ["2001:db8::/129", "prefix length must be 0..128"],
    ["2001:db8::/1000", "prefix length must be 0..128"],
    ["10.0.0.0/8/8", "more than one '/'"],
    ["256.0.0.1", "not an IPv4 or IPv6 address"],
    ["10.0.0", "not an IPv4 or IPv6 address"],
    ["example.com/24", "not an IPv4 or IPv6 address"],
    ["", "not an IPv4 or IPv6 address"],
    ["/8", "not an IPv4 or IPv6 address"],
    ["fe80::1%eth0/64", "not an IPv4 or IPv6 address"],
    ["2001:db8:::1", "not an IPv4 or IPv6 address"],
  ])("refuses %j: %s", (text, error) => {
    expect(parseCidr(text)).toEqual({ error });
  });
});

describe("normaliseIp", () => {
  it("unwraps IPv4-mapped IPv6, drops a zone, lower-cases IPv6 and trims", () => {
    expect(normaliseIp("::ffff:10.1.2.3")).toEqual({ address: "10.1.2.3", family: "ipv4" });
    expect(normaliseIp("::FFFF:10.1.2.3")).toEqual({ address: "10.1.2.3", family: "ipv4" });
    expect(normaliseIp("fe80::1%eth0")).toEqual({ address: "fe80::1", family: "ipv6" });
    expect(normaliseIp("2001:DB8::A")).toEqual({ address: "2001:db8::a", family: "ipv6" });
    expect(normaliseIp(" 10.0.0.1 ")).toEqual({ address: "10.0.0.1", family: "ipv4" });
    for (const bad of ["", "10.0.0.256", "localhost", "::ffff:10.0.0", "1.2.3.4:80"]) {
      expect(normaliseIp(bad), bad).toBeUndefined();
    }
  });
});

describe("IpRules.permits", () => {
  it("permits everything, even a missing address, when a key has no lists", () => {
    const r = new IpRules([], []);
    expect(r.restricted).toBe(false);
    for (const ip of ["10.0.0.1", "2001:db8::1", "", "garbage"])
      expect(r.permits(normaliseIp(ip))).toBe(true);
  });

  it("with an allow list, permits only its networks, and no unparseable address", () => {
    const r = new IpRules(["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"], []);
    expect(r.restricted).toBe(true);
    for (const ip of [
      "10.0.0.1",
      "10.255.255.255",
      "192.0.2.7",
      "2001:db8::1",
      "2001:db8:ffff::",
    ]) {
      expect(r.permits(normaliseIp(ip)), ip).toBe(true);
    }
    for (const ip of ["11.0.0.1", "192.0.2.8", "2001:db9::1", "::1", "", "not-an-ip"]) {
      expect(r.permits(normaliseIp(ip)), ip).toBe(false);
    }
  });

  it("lets deny win over allow", () => {
    const r = new IpRules(["10.0.0.0/8"], ["10.9.0.0/16"]);
    expect(r.permits(normaliseIp("10.8.255.255"))).toBe(true);
    expect(r.permits(normaliseIp("10.9.0.0"))).toBe(false);
    expect(r.permits(normaliseIp("10.9.255.255"))).toBe(false);
    expect(r.permits(normaliseIp("10.10.0.0"))).toBe(true);
  });

  it("matches IPv4-mapped IPv6 clients against IPv4 rules, in every spelling", () => {
    const deny = new IpRules([], ["10.0.0.0/8"]);
    for (const ip of [
      "10.0.0.1",
      "::ffff:10.0.0.1",
      "::FFFF:10.0.0.1",
      "::ffff:a00:1",
      "0:0:0:0:0:ffff:10.0.0.1",
      "0:0:0:0:0:ffff:a00:1",
    ]) {
      expect(deny.permits(normaliseIp(ip)), ip).toBe(false);
    }
    expect(deny.permits(normaliseIp("::ffff:11.0.0.1"))).toBe(true);
    const allow = new IpRules(["192.0.2.0/24"], []);
    expect(allow.permits(normaliseIp("::ffff:192.0.2.1"))).toBe(true);
    expect(allow.permits(normaliseIp("::ffff:198.51.100.1"))).toBe(false);
  });

  it("keeps IPv6 rules from matching unrelated IPv4 clients and the reverse", () => {
    const v6 = new IpRules(["2001:db8::/32"], []);
    expect(v6.permits(normaliseIp("32.1.13.184"))).toBe(false); // 0x20010db8 as IPv4
    const v4 = new IpRules([], ["0.0.0.0/0"]);
    expect(v4.permits(normaliseIp("2001:db8::1"))).toBe(true);
    expect(v4.permits(normaliseIp("1.2.3.4"))).toBe(false);
  });

  it("accepts a client address with a zone or surrounding spaces", () => {
    const r = new IpRules(["fe80::/10"], []);
    expect(r.permits(normaliseIp("fe80::1%eth0"))).toBe(true);
    expect(r.permits(normaliseIp(" fe80::1 "))).toBe(true);
  });

  it("refuses to compile an invalid stored entry", () => {
    expect(() => new IpRules(["10.0.0.0/40"], [])).toThrow(/invalid network/);
  });
});
