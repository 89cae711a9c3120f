import { normaliseIp } from "../subjects/ip-address.js";

/**
 * The network an address belongs to, as `addr/prefix` text: the address with
 * its host bits cleared (IPv4 and IPv6). Undefined for a non-address.
 */
export function networkOf(ip: string, ipv4Prefix: number, ipv6Prefix: number): string | undefined {
  const n = normaliseIp(ip);
  if (!n) return undefined;
  if (n.family === "ipv4") {
    const parts = n.address.split(".").map(Number);
    const v =
      (((parts[0] ?? 0) << 24) |
        ((parts[1] ?? 0) << 16) |
        ((parts[2] ?? 0) << 8) |
        (parts[3] ?? 0)) >>>
      0;
    const mask = ipv4Prefix === 0 ? 0 : (0xffffffff << (32 - ipv4Prefix)) >>> 0;
    const m = (v & mask) >>> 0;
    return `${m >>> 24}.${(m >>> 16) & 255}.${(m >>> 8) & 255}.${m & 255}/${ipv4Prefix}`;
  }
  const full = expandV6(n.address);
  let bits = "";
  for (const g of full) bits += parseInt(g, 16).toString(2).padStart(16, "0");
  bits = bits.slice(0, ipv6Prefix).padEnd(128, "0");
  const groups: string[] = [];
  for (let i = 0; i < 128; i += 16) groups.push(parseInt(bits.slice(i, i + 16), 2).toString(16));
  return `${groups.join(":")}/${ipv6Prefix}`;
}

function expandV6(addr: string): string[] {
  const [head = "", tail] = addr.split("::");
  const h = head === "" ? [] : head.split(":");
  const t = tail === undefined || tail === "" ? [] : tail.split(":");
  const fill = tail === undefined ? [] : Array(8 - h.length - t.length).fill("0");
  return [...h, ...fill, ...t].map((g) => g || "0");
}
