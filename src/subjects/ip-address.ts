/**
 * Client addresses, parsed once the same way everywhere: key IP rules, rate
 * limits by IP, detection rules, request validation. A small shared module so
 * no domain folder borrows another's.
 */
import { isIP } from "node:net";

/**
 * Normalises a client address: trims, drops an IPv6 zone, and unwraps
 * IPv4-mapped IPv6 (`::ffff:10.0.0.1`) so v4 rules match it. Returns undefined
 * for anything that is not an IP address.
 */
export function normaliseIp(
  text: string,
): { address: string; family: "ipv4" | "ipv6" } | undefined {
  let t = text.trim();
  const zone = t.indexOf("%");
  if (zone >= 0) t = t.slice(0, zone);
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(t);
  if (mapped) t = mapped[1] as string;
  const v = isIP(t);
  if (v === 4) return { address: t, family: "ipv4" };
  if (v === 6) return { address: t.toLowerCase(), family: "ipv6" };
  return undefined;
}

/** Parses `addr` or `addr/prefix`; returns an error text for invalid input. */
export function parseCidr(
  text: string,
): { address: string; family: "ipv4" | "ipv6"; prefix: number } | { error: string } {
  const [addr = "", prefixText, extra] = text.split("/");
  if (extra !== undefined) return { error: "more than one '/'" };
  const ip = normaliseIp(addr);
  if (!ip || addr.includes("%")) return { error: "not an IPv4 or IPv6 address" };
  const max = ip.family === "ipv4" ? 32 : 128;
  if (prefixText === undefined) return { ...ip, prefix: max };
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) {
    return { error: `prefix length must be 0..${max}` };
  }
  return { ...ip, prefix: Number(prefixText) };
}
