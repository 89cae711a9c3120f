package tollgate

// Pure unit tests of the pieces the end-to-end tests exercise through a real
// server: the client-IP walk, the cache key, the backoff bounds, the TTL clamp.

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"

	tollgatev1 "github.com/tollgate/tollgate/clients/go/gen/tollgate/v1"
)

func TestClientIPWalksOnlyTrustedHops(t *testing.T) {
	cases := []struct {
		name, peer, xff string
		list            []string
		count           int
		want            string
	}{
		{"no trust: the peer", "198.51.100.1:4000", "203.0.113.9", nil, 0, "198.51.100.1"},
		{"IPv6 peer without zone", "[fe80::1%eth0]:4000", "", nil, 0, "fe80::1"},
		{"IPv4-mapped peer is IPv4", "[::ffff:10.0.0.1]:4000", "", nil, 0, "10.0.0.1"},
		{"untrusted peer ignores XFF", "198.51.100.1:1", "203.0.113.9", []string{"10.0.0.0/8"}, 0, "198.51.100.1"},
		{"trusted peer", "10.0.0.2:1", "203.0.113.9", []string{"10.0.0.0/8"}, 0, "203.0.113.9"},
		{"all hops trusted: the leftmost", "10.0.0.2:1", "10.1.1.1, 10.2.2.2", []string{"10.0.0.0/8"}, 0, "10.1.1.1"},
		{"a garbage entry stops the walk", "10.0.0.2:1", "203.0.113.9, nonsense", []string{"10.0.0.0/8"}, 0, "10.0.0.2"},
		{"XFF entries with ports and brackets", "10.0.0.2:1", "[2001:db8::1]:443", []string{"10.0.0.2"}, 0, "2001:db8::1"},
		{"count 1", "10.0.0.2:1", "1.1.1.1, 203.0.113.9", nil, 1, "203.0.113.9"},
		{"count beyond the chain: the leftmost", "10.0.0.2:1", "203.0.113.9", nil, 5, "203.0.113.9"},
		{"not an IP peer", "@", "203.0.113.9", nil, 1, ""},
	}
	for _, tc := range cases {
		tr, err := newProxyTrust(tc.list, tc.count)
		if err != nil {
			t.Fatal(err)
		}
		r := &http.Request{RemoteAddr: tc.peer, Header: http.Header{}}
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := tr.clientIP(r); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if _, err := newProxyTrust([]string{"not-a-cidr"}, 0); err == nil {
		t.Error("a bad TrustedProxies entry was accepted")
	}
}

func TestCacheKeyIsADigestOfEveryInput(t *testing.T) {
	const secret = "tg_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	base := &tollgatev1.AuthorizeRequest{ApiKey: secret, Method: "GET", Path: "/a", ClientIp: "10.0.0.1", Endpoint: "e", RequiredScopes: []string{"b", "a"}}
	k := cacheKey(base)
	if bytes.Contains(k[:], []byte(secret)) {
		t.Fatal("the raw key is in the cache key")
	}
	same := &tollgatev1.AuthorizeRequest{Headers: map[string]string{"X-Api-Key": secret}, Method: "GET", Path: "/a", ClientIp: "10.0.0.1", Endpoint: "e", RequiredScopes: []string{"a", "b"}}
	if cacheKey(same) != k {
		t.Fatal("the key from headers or scopes in another order changed the cache key")
	}
	for _, change := range []func(r *tollgatev1.AuthorizeRequest){
		func(r *tollgatev1.AuthorizeRequest) { r.ApiKey += "x" },
		func(r *tollgatev1.AuthorizeRequest) { r.Method = "POST" },
		func(r *tollgatev1.AuthorizeRequest) { r.Path = "/b" },
		func(r *tollgatev1.AuthorizeRequest) { r.ClientIp = "10.0.0.2" },
		func(r *tollgatev1.AuthorizeRequest) { r.Endpoint = "f" },
		func(r *tollgatev1.AuthorizeRequest) { r.RequiredScopes = []string{"a"} },
		func(r *tollgatev1.AuthorizeRequest) { r.Path, r.ClientIp = "/a1", "0.0.0.1" }, // no ambiguity across fields
	} {
		r := &tollgatev1.AuthorizeRequest{ApiKey: secret, Method: "GET", Path: "/a", ClientIp: "10.0.0.1", Endpoint: "e", RequiredScopes: []string{"b", "a"}}
		change(r)
		if cacheKey(r) == k {
			t.Errorf("a changed request %v kept the cache key", r)
		}
	}
}

func TestRetryWaitIsFullJitterUnderTheCap(t *testing.T) {
	ro := RetryOptions{BaseDelay: 25 * time.Millisecond, MaxDelay: 250 * time.Millisecond}
	for attempt := range 40 {
		step := min(ro.MaxDelay, ro.BaseDelay<<min(attempt, 29))
		for range 100 {
			if w := retryWait(ro, attempt); w < 0 || w >= step {
				t.Fatalf("attempt %d: wait %v outside [0, %v)", attempt, w, step)
			}
		}
	}
}

func TestOptionsDefaultsAndClamp(t *testing.T) {
	t.Setenv("TOLLGATE_SERVER", "")
	r, err := resolve(Options{AllowCache: AllowCacheOptions{TTL: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if r.target != "127.0.0.1:50051" || r.useTLS || r.timeout != 200*time.Millisecond || r.mgmt != 2*time.Second || r.bulk != 30*time.Second ||
		r.retry.MaxRetries != 2 || r.breaker.Failures != 5 || r.breaker.OpenTimeout != time.Second ||
		r.cacheTTL != 5*time.Second || r.cacheMax != 10000 {
		t.Fatalf("defaults: %+v", r)
	}
	t.Setenv("TOLLGATE_SERVER", "https://tollgate.internal")
	if r, _ := resolve(Options{}); r.target != "tollgate.internal:443" || !r.useTLS {
		t.Fatalf("https server: %+v", r)
	}
	if _, err := resolve(Options{Server: "127.0.0.1:50051"}); err == nil {
		t.Fatal("a server without scheme was accepted")
	}
}

func TestDeadlinePerServiceAndBulkCall(t *testing.T) {
	intercept := deadlineInterceptor(200*time.Millisecond, 2*time.Second, 30*time.Second)
	for method, want := range map[string]time.Duration{
		tollgatev1.TollgateService_Authorize_FullMethodName: 200 * time.Millisecond,
		tollgatev1.KeyService_ListKeys_FullMethodName:       2 * time.Second,
		tollgatev1.KeyService_ExportKeys_FullMethodName:     30 * time.Second,
		tollgatev1.KeyService_ImportKeys_FullMethodName:     30 * time.Second,
	} {
		var got time.Duration
		invoker := func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
			d, _ := ctx.Deadline()
			got = time.Until(d)
			return nil
		}
		_ = intercept(context.Background(), method, nil, nil, nil, invoker)
		if got > want || got < want/2 {
			t.Errorf("%s: deadline in %v, want %v", method, got, want)
		}
	}
}
