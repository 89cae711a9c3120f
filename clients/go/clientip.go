package tollgate

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// proxyTrust decides which X-Forwarded-For entries to believe. With neither
// a list nor a count, none: the client IP is the socket peer.
type proxyTrust struct {
	prefixes []netip.Prefix
	count    int
}

// newProxyTrust parses TrustedProxies (CIDRs or single addresses).
func newProxyTrust(list []string, count int) (proxyTrust, error) {
	t := proxyTrust{count: count}
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			t.prefixes = append(t.prefixes, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return t, fmt.Errorf("tollgate: TrustedProxies entry %q is neither a CIDR nor an IP address", s)
		}
		a = a.Unmap().WithZone("")
		t.prefixes = append(t.prefixes, netip.PrefixFrom(a, a.BitLen()))
	}
	return t, nil
}

func (t proxyTrust) trusted(a netip.Addr) bool {
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP returns the request's client address as text, or "" when the peer
// address is not an IP (e.g. a Unix socket).
//
// With TrustedProxyCount n, the hops are [peer, XFF right to left…] and the
// client is the n-th hop (the leftmost XFF entry if there are fewer): each of
// the n trusted proxies appended the address it received from. With
// TrustedProxies, the chain is walked from the peer leftwards while the
// current hop is a trusted proxy; the first untrusted hop is the client. An
// entry that is not an IP address stops the walk at the hop before it.
func (t proxyTrust) clientIP(r *http.Request) string {
	peer := parseHost(r.RemoteAddr)
	if !peer.IsValid() {
		return ""
	}
	if t.count <= 0 && len(t.prefixes) == 0 {
		return peer.String()
	}
	xff := forwardedFor(r.Header)
	cur := peer
	for i, hop := len(xff)-1, 1; i >= 0; i, hop = i-1, hop+1 {
		if t.count > 0 {
			if hop > t.count {
				break
			}
		} else if !t.trusted(cur) {
			break
		}
		next := parseAddr(xff[i])
		if !next.IsValid() {
			break
		}
		cur = next
	}
	return cur.String()
}

// forwardedFor returns every X-Forwarded-For entry, in header order.
func forwardedFor(h http.Header) []string {
	var out []string
	for _, line := range h.Values("X-Forwarded-For") {
		for _, e := range strings.Split(line, ",") {
			if e = strings.TrimSpace(e); e != "" {
				out = append(out, e)
			}
		}
	}
	return out
}

// parseHost parses a "host:port" (or bare host) peer address.
func parseHost(s string) netip.Addr {
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	return parseAddr(s)
}

// parseAddr parses an IP address, also `[v6]` and `[v6]:port` forms, and
// returns it without zone and with IPv4-mapped IPv6 as IPv4.
func parseAddr(s string) netip.Addr {
	if strings.HasPrefix(s, "[") {
		if host, _, err := net.SplitHostPort(s); err == nil {
			s = host
		} else {
			s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
		}
	} else if strings.Count(s, ":") == 1 { // IPv4 with a port
		if host, _, err := net.SplitHostPort(s); err == nil {
			s = host
		}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}
