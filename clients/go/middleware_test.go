package tollgate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/clients/go/gen/tollgate/v1"
)

// seen is what the test app's handlers answer: what they got from the middleware.
type seen struct {
	Identity *tollgate.Identity `json:"identity"`
	FailOpen bool               `json:"fail_open"`
	Endpoint string             `json:"endpoint"`
	Handler  string             `json:"handler"`
}

func echoHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seen{Identity: tollgate.IdentityFrom(r.Context()), Handler: name}
		if d := tollgate.DecisionFrom(r.Context()); d != nil {
			s.FailOpen, s.Endpoint = d.FailOpen, d.Endpoint
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	})
}

// testMux is the app under test: a catch-all route, a Protect route, health.
func testMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/", echoHandler("any"))
	mux.Handle("POST /v1/exports/{name}", tollgate.Protect("export", "exports:run")(echoHandler("export")))
	mux.Handle("GET /v1/strict", tollgate.Protect("", strings.Repeat("s", 200))(echoHandler("strict")))
	mux.Handle("GET /healthz", echoHandler("health"))
	return mux
}

// serveApp runs testMux behind the middleware on a real 127.0.0.1 port.
func serveApp(t *testing.T, c *tollgate.Client, o tollgate.MiddlewareOptions) *httptest.Server {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testLogger()
	}
	s := httptest.NewServer(tollgate.Middleware(c, o)(testMux()))
	t.Cleanup(s.Close)
	return s
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) seen(t *testing.T) seen {
	t.Helper()
	var s seen
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatalf("status %d, body %s: %v", r.status, r.body, err)
	}
	return s
}

func (r reply) problem(t *testing.T) tollgate.Problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("status %d, content-type %q, want application/problem+json; body %s", r.status, ct, r.body)
	}
	var p tollgate.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Status != r.status {
		t.Fatalf("problem status %d on a %d answer", p.Status, r.status)
	}
	return p
}

// call sends one request; headers are name, value pairs.
func call(t *testing.T, method, url string, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: body}
}

func TestMiddlewareAllowsWithIdentityAndRateLimitHeaders(t *testing.T) {
	c := newClient(t, sharedServer(t).url(), tollgate.Options{})
	k := createKey(t, c, "acme-allow", "orders:read")
	app := serveApp(t, c, tollgate.MiddlewareOptions{})

	r := call(t, "GET", app.URL+"/v1/limited?page=2", "x-api-key", k.GetSecret())
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	got := r.seen(t)
	id := got.Identity
	if id == nil || id.KeyID != k.GetKey().GetId() || id.Owner != "acme-allow" || id.Tier != "free" ||
		len(id.Scopes) != 1 || id.Scopes[0] != "orders:read" || id.Metadata["plan"] != "test" || id.Environment != "live" {
		t.Fatalf("identity %+v", id)
	}
	if got.Endpoint != "limited" || got.FailOpen {
		t.Fatalf("decision: %+v", got)
	}
	if p, rl := r.header.Get("RateLimit-Policy"), r.header.Get("RateLimit"); !strings.Contains(p, `"per-key";q=2`) || !strings.Contains(rl, `"per-key";r=1`) {
		t.Fatalf("RateLimit-Policy %q, RateLimit %q", p, rl)
	}

	// A custom key header.
	custom := serveApp(t, c, tollgate.MiddlewareOptions{HeaderName: "X-Tollgate-Key"})
	if r := call(t, "GET", custom.URL+"/v1/orders", "X-Tollgate-Key", k.GetSecret()); r.status != 200 {
		t.Fatalf("custom header: %d %s", r.status, r.body)
	}
}

func TestMiddlewareAnswersEachDenialAsProblemJSON(t *testing.T) {
	c := newClient(t, sharedServer(t).url(), tollgate.Options{})
	app := serveApp(t, c, tollgate.MiddlewareOptions{})
	reader := createKey(t, c, "acme-deny", "orders:read")
	noScope := createKey(t, c, "acme-deny")

	t.Run("missing key: 401 with WWW-Authenticate", func(t *testing.T) {
		r := call(t, "GET", app.URL+"/v1/orders")
		p := r.problem(t)
		if r.status != 401 || p.Type != "about:blank" || p.Title != "Unauthorized" || p.Reason != "REASON_MISSING_KEY" || p.DecisionID == "" || p.Detail == "" {
			t.Fatalf("%d %+v", r.status, p)
		}
		if r.header.Get("WWW-Authenticate") == "" {
			t.Fatal("no WWW-Authenticate")
		}
	})
	t.Run("unknown key: 401", func(t *testing.T) {
		// A well-formed secret the server no longer knows: rotated out with no grace.
		old := createKey(t, c, "acme-deny-rotated")
		rot, err := c.RotateKey(context.Background(), &tollgatev1.RotateKeyRequest{KeyId: old.GetKey().GetId(), GracePeriod: durationpb.New(0)})
		if err != nil {
			t.Fatal(err)
		}
		rememberSecret(rot.GetSecret())
		r := call(t, "GET", app.URL+"/v1/orders", "x-api-key", old.GetSecret())
		p := r.problem(t)
		if r.status != 401 || p.Reason != "REASON_UNKNOWN_KEY" || p.Title != "Unauthorized" || r.header.Get("WWW-Authenticate") == "" {
			t.Fatalf("%d %+v", r.status, p)
		}
	})
	t.Run("malformed key: 401", func(t *testing.T) {
		r := call(t, "GET", app.URL+"/v1/orders", "x-api-key", "tg_live_not-a-key")
		if p := r.problem(t); r.status != 401 || p.Reason != "REASON_MALFORMED_KEY" {
			t.Fatalf("%d %+v", r.status, p)
		}
	})
	t.Run("insufficient scope: 403", func(t *testing.T) {
		r := call(t, "GET", app.URL+"/v1/orders", "x-api-key", noScope.GetSecret())
		p := r.problem(t)
		if r.status != 403 || p.Type != "about:blank" || p.Title != "Forbidden" || p.Reason != "REASON_INSUFFICIENT_SCOPE" {
			t.Fatalf("%d %+v", r.status, p)
		}
		if r := call(t, "GET", app.URL+"/v1/orders", "x-api-key", reader.GetSecret()); r.status != 200 {
			t.Fatalf("with the scope: %d", r.status)
		}
	})
	t.Run("rate limited: 429 quota-exceeded with Retry-After and RateLimit", func(t *testing.T) {
		k := createKey(t, c, "acme-deny-limited")
		for i := range 2 {
			if r := call(t, "GET", app.URL+"/v1/limited", "x-api-key", k.GetSecret()); r.status != 200 {
				t.Fatalf("request %d: %d", i+1, r.status)
			}
		}
		r := call(t, "GET", app.URL+"/v1/limited", "x-api-key", k.GetSecret())
		p := r.problem(t)
		if r.status != 429 || p.Type != tollgate.QuotaExceededType || p.Title != "Quota exceeded" || p.Reason != "REASON_RATE_LIMITED" || p.DecisionID == "" {
			t.Fatalf("%d %+v", r.status, p)
		}
		if r.header.Get("Retry-After") == "" || !strings.Contains(r.header.Get("RateLimit"), `"per-key";r=0`) || r.header.Get("RateLimit-Policy") == "" {
			t.Fatalf("headers %v", r.header)
		}
	})
}

func TestMiddlewareSkipListBypassesTollgate(t *testing.T) {
	// Nothing listens: any request that reached Tollgate would be a 503.
	c := newClient(t, closedPort(t), tollgate.Options{})
	app := serveApp(t, c, tollgate.MiddlewareOptions{SkipPaths: []string{"/healthz"}, SkipPrefixes: []string{"/static/"}})
	for path, want := range map[string]int{"/healthz": 200, "/static/app.js": 200, "/healthz/deep": 503, "/v1/orders": 503} {
		r := call(t, "GET", app.URL+path)
		if r.status != want {
			t.Errorf("%s: %d, want %d", path, r.status, want)
		}
		if want == 200 && r.seen(t).Identity != nil {
			t.Errorf("%s: identity on a skipped path", path)
		}
	}
}

func TestMiddlewareWhenTheSidecarIsDown(t *testing.T) {
	srv := startServer(t, 0)
	c := newClient(t, srv.url(), tollgate.Options{})
	k := createKey(t, c, "acme-down")
	closed := serveApp(t, c, tollgate.MiddlewareOptions{})
	open := serveApp(t, c, tollgate.MiddlewareOptions{FailMode: tollgate.FailOpen})
	if r := call(t, "GET", closed.URL+"/v1/x", "x-api-key", k.GetSecret()); r.status != 200 {
		t.Fatalf("with the server up: %d", r.status)
	}
	srv.stop()

	t.Run("fail closed (default): 503 problem", func(t *testing.T) {
		r := call(t, "GET", closed.URL+"/v1/x", "x-api-key", k.GetSecret())
		p := r.problem(t)
		if r.status != 503 || p.Reason != tollgate.ReasonUnavailable || p.Title != "Service Unavailable" {
			t.Fatalf("%d %+v", r.status, p)
		}
		if bytes.Contains(r.body, []byte(k.GetSecret())) {
			t.Fatal("the key is in the problem body")
		}
	})
	t.Run("fail open: through without identity, marked", func(t *testing.T) {
		r := call(t, "GET", open.URL+"/v1/x", "x-api-key", k.GetSecret())
		s := r.seen(t)
		if r.status != 200 || s.Identity != nil || !s.FailOpen {
			t.Fatalf("%d %+v", r.status, s)
		}
	})
	t.Run("fail open on a closed port", func(t *testing.T) {
		app := serveApp(t, newClient(t, closedPort(t), tollgate.Options{}), tollgate.MiddlewareOptions{FailMode: tollgate.FailOpen})
		if s := call(t, "GET", app.URL+"/v1/x").seen(t); !s.FailOpen || s.Identity != nil {
			t.Fatalf("%+v", s)
		}
	})
}

func TestMiddlewareProtectGivesARouteItsEndpointAndScopes(t *testing.T) {
	var n attempts
	c := newClient(t, sharedServer(t).url(), tollgate.Options{DialOptions: []grpc.DialOption{n.dialOption()}})
	runner := createKey(t, c, "acme-protect", "exports:run")
	reader := createKey(t, c, "acme-protect", "orders:read")
	app := serveApp(t, c, tollgate.MiddlewareOptions{})
	const authorize = tollgatev1.TollgateService_Authorize_FullMethodName

	n.reset()
	r := call(t, "POST", app.URL+"/v1/exports/monthly", "x-api-key", runner.GetSecret())
	if s := r.seen(t); r.status != 200 || s.Handler != "export" || s.Endpoint != "export" {
		t.Fatalf("%d %+v", r.status, s)
	}
	if n.get(authorize) != 1 {
		t.Fatalf("%d Authorize calls under http.ServeMux, want 1", n.get(authorize))
	}
	r = call(t, "POST", app.URL+"/v1/exports/monthly", "x-api-key", reader.GetSecret())
	if p := r.problem(t); r.status != 403 || p.Reason != "REASON_INSUFFICIENT_SCOPE" {
		t.Fatalf("%d %+v", r.status, p)
	}

	// Protect without Middleware refuses instead of serving unprotected.
	bare := httptest.NewServer(tollgate.Protect("export")(echoHandler("bare")))
	defer bare.Close()
	if r := call(t, "GET", bare.URL+"/"); r.status != 500 || r.problem(t).Reason != tollgate.ReasonError {
		t.Fatalf("Protect alone: %d %s", r.status, r.body)
	}
}

func TestMiddlewareUsesTheClientIPOfTrustedProxiesOnly(t *testing.T) {
	c := newClient(t, sharedServer(t).url(), tollgate.Options{})
	// The key works only from 203.0.113.0/24, so the decision shows which IP was sent.
	k, err := c.CreateKey(context.Background(), &tollgatev1.CreateKeyRequest{Owner: "acme-ip", IpAllow: []string{"203.0.113.0/24"}})
	if err != nil {
		t.Fatal(err)
	}
	rememberSecret(k.GetSecret())
	cases := []struct {
		name string
		o    tollgate.MiddlewareOptions
		xff  string
		want int
	}{
		{"no proxy trusted: the socket peer (127.0.0.1)", tollgate.MiddlewareOptions{}, "203.0.113.9", 403},
		{"trusted peer: its X-Forwarded-For", tollgate.MiddlewareOptions{TrustedProxies: []string{"127.0.0.1"}}, "203.0.113.9", 200},
		{"an untrusted hop stops the walk", tollgate.MiddlewareOptions{TrustedProxies: []string{"127.0.0.0/8"}}, "203.0.113.9, 198.51.100.1", 403},
		{"trusted hops are walked over", tollgate.MiddlewareOptions{TrustedProxies: []string{"127.0.0.0/8", "198.51.100.0/24"}}, "203.0.113.9, 198.51.100.1", 200},
		{"a count of 2 proxies", tollgate.MiddlewareOptions{TrustedProxyCount: 2}, "10.9.9.9, 203.0.113.9, 198.51.100.1", 200},
		{"a count of 1 proxy", tollgate.MiddlewareOptions{TrustedProxyCount: 1}, "203.0.113.9, 198.51.100.1", 403},
	}
	for _, tc := range cases {
		app := serveApp(t, c, tc.o)
		r := call(t, "GET", app.URL+"/v1/x", "x-api-key", k.GetSecret(), "X-Forwarded-For", tc.xff)
		if r.status != tc.want {
			t.Errorf("%s: %d, want %d (%s)", tc.name, r.status, tc.want, r.body)
		}
		if tc.want == 403 {
			if p := r.problem(t); p.Reason != "REASON_IP_DENIED" {
				t.Errorf("%s: reason %s", tc.name, p.Reason)
			}
		}
	}
}

func TestMiddlewareSurfacesBadInput(t *testing.T) {
	c := newClient(t, sharedServer(t).url(), tollgate.Options{})
	k := createKey(t, c, "acme-bad")
	var logs lockedBuffer
	app := serveApp(t, c, tollgate.MiddlewareOptions{Logger: testLogger(&logs)})

	// The request's own fault: a path Tollgate refuses to normalise.
	r := call(t, "GET", app.URL+"/v1/a%2Fb", "x-api-key", k.GetSecret())
	if p := r.problem(t); r.status != 400 || p.Reason != tollgate.ReasonBadRequest {
		t.Fatalf("encoded slash: %d %+v", r.status, p)
	}
	// An oversized key is a malformed key (Tollgate decides so, no error).
	long := "tg_live_" + strings.Repeat("A", 300)
	r = call(t, "GET", app.URL+"/v1/x", "x-api-key", long)
	if p := r.problem(t); r.status != 401 || p.Reason != "REASON_MALFORMED_KEY" {
		t.Fatalf("oversized key: %d %+v", r.status, p)
	}
	if bytes.Contains(r.body, []byte(long)) || strings.Contains(logs.String(), long) {
		t.Fatal("the oversized key was echoed")
	}
	rememberSecret(long)

	// A programming error (a 200-byte scope in Protect): 500, and a log line naming the field.
	r = call(t, "GET", app.URL+"/v1/strict", "x-api-key", k.GetSecret())
	if p := r.problem(t); r.status != 500 || p.Reason != tollgate.ReasonError {
		t.Fatalf("bad scope: %d %+v", r.status, p)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "required_scopes") {
		t.Fatalf("no error log naming the field:\n%s", l)
	}
	if strings.Contains(logs.String(), k.GetSecret()) {
		t.Fatal("the key is in the log")
	}
}
