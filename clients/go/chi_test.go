package tollgate_test

import (
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	"google.golang.org/grpc"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/clients/go/gen/tollgate/v1"
)

// chi (a test-only dependency) runs r.Use middleware before routing, so
// Middleware cannot see the route's Protect options ahead: the request is
// authorized by method and path (limits charged once), then Protect checks
// its endpoint and scopes with a second, non-charging call.
func TestMiddlewareUnderChi(t *testing.T) {
	var n attempts
	c := newClient(t, sharedServer(t).url(), tollgate.Options{DialOptions: []grpc.DialOption{n.dialOption()}})
	runner := createKey(t, c, "acme-chi", "exports:run", "orders:read")
	reader := createKey(t, c, "acme-chi", "orders:read")

	r := chi.NewRouter()
	r.Use(tollgate.Middleware(c, tollgate.MiddlewareOptions{SkipPaths: []string{"/healthz"}, Logger: testLogger()}))
	r.Get("/healthz", echoHandler("health").ServeHTTP)
	r.Get("/v1/orders", echoHandler("orders").ServeHTTP)
	r.With(tollgate.Protect("export", "exports:run")).Post("/v1/exports/{name}", echoHandler("export").ServeHTTP)
	app := httptest.NewServer(r)
	defer app.Close()
	const authorize = tollgatev1.TollgateService_Authorize_FullMethodName

	if got := call(t, "GET", app.URL+"/v1/orders", "x-api-key", reader.GetSecret()); got.status != 200 || got.seen(t).Identity.Owner != "acme-chi" {
		t.Fatalf("GET /v1/orders: %d %s", got.status, got.body)
	}
	if got := call(t, "GET", app.URL+"/healthz"); got.status != 200 {
		t.Fatalf("skipped /healthz: %d", got.status)
	}
	n.reset()
	got := call(t, "POST", app.URL+"/v1/exports/q3", "x-api-key", runner.GetSecret())
	if s := got.seen(t); got.status != 200 || s.Handler != "export" || s.Endpoint != "export" || s.Identity.KeyID != runner.GetKey().GetId() {
		t.Fatalf("POST /v1/exports/q3: %d %s", got.status, got.body)
	}
	if n.get(authorize) != 2 {
		t.Fatalf("%d Authorize calls, want 2 (charged by path, then Protect's check)", n.get(authorize))
	}
	got = call(t, "POST", app.URL+"/v1/exports/q3", "x-api-key", reader.GetSecret())
	if p := got.problem(t); got.status != 403 || p.Reason != "REASON_INSUFFICIENT_SCOPE" {
		t.Fatalf("without exports:run: %d %+v", got.status, p)
	}
}
