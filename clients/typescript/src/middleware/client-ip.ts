/**
 * The client IP of a request: the socket peer, or — only when proxies are
 * trusted — the address `X-Forwarded-For` names, counted back from the peer
 * over the trusted hops. Uses proxy-addr, the library Express itself uses for
 * `trust proxy`, so the counting rules are the well-known ones.
 */
import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";
import proxyaddr from "proxy-addr";

/**
 * Which proxies are trusted to set `X-Forwarded-For`:
 * - `false` / `0` / omitted (default): none; the socket peer is the client.
 * - a number N: the N hops nearest to this server are proxies (N = 1: one
 *   load balancer in front), so the client is the N-th address counted back.
 * - a list of addresses, CIDRs or proxy-addr names (`loopback`, `linklocal`,
 *   `uniquelocal`): hops whose address is in the list are skipped.
 */
export type TrustProxy = false | number | readonly string[];

/** Compiles a {@link TrustProxy} into a function for {@link clientIp}. */
export function compileTrust(t: TrustProxy | undefined): (req: IncomingMessage) => string {
  if (t === undefined || t === false || t === 0) {
    return (req) => req.socket.remoteAddress ?? "";
  }
  const trust =
    typeof t === "number" ? (_addr: string, i: number) => i < t : proxyaddr.compile([...t]);
  return (req) => proxyaddr(req, trust);
}

/** True if `ip` is an IPv4 or IPv6 address in text form. */
export function isIpAddress(ip: string): boolean {
  return isIP(ip) !== 0;
}
