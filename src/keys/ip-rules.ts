import { BlockList } from "node:net";
import { parseCidr } from "../subjects/ip-address.js";

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
