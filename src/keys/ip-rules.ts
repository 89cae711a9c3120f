import { BlockList, isIP } from "node:net";

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

/** Compiled allow/deny lists of one key. */
export class IpRules {
  private readonly allow = new BlockList();
  private readonly deny = new BlockList();
  private readonly hasAllow: boolean;
  private readonly hasDeny: boolean;

  /** Lists must hold valid entries (validated when the key was written). */
  constructor(allow: readonly string[], deny: readonly string[]) {
    for (const c of allow) add(this.allow, c);
    for (const c of deny) add(this.deny, c);
    this.hasAllow = allow.length > 0;
    this.hasDeny = deny.length > 0;
  }

  /** True if the rules restrict anything. */
  get restricted(): boolean {
    return this.hasAllow || this.hasDeny;
  }

  /**
   * Deny wins over allow; a non-empty allow list refuses everything else,
   * including a request without an address. `ip` is normalised (normaliseIp).
   */
  permits(ip: { address: string; family: "ipv4" | "ipv6" } | undefined): boolean {
    if (!this.restricted) return true;
    if (!ip) return false;
    if (this.hasDeny && this.deny.check(ip.address, ip.family)) return false;
    return !this.hasAllow || this.allow.check(ip.address, ip.family);
  }
}

function add(list: BlockList, cidr: string): void {
  const p = parseCidr(cidr);
  if ("error" in p) throw new Error(`invalid network in stored key: ${p.error}`);
  list.addSubnet(p.address, p.prefix, p.family);
}
