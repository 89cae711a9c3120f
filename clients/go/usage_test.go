package tollgate_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/clients/go/gen/tollgate/v1"
)

// reportsDone signals each ReportUsage call that has been answered.
func reportsDone(done chan<- error) grpc.DialOption {
	return grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if method == tollgatev1.TollgateService_ReportUsage_FullMethodName {
			done <- err
		}
		return err
	})
}

// usageApp serves /v1/limited (2 per minute per key) behind the middleware;
// with ?report=N the handler reports N itself.
func usageApp(t *testing.T, c *tollgate.Client, o tollgate.MiddlewareOptions) *httptest.Server {
	t.Helper()
	o.Logger = testLogger()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/limited", func(w http.ResponseWriter, r *http.Request) {
		if n := r.URL.Query().Get("report"); n != "" {
			cost, _ := strconv.Atoi(n)
			res, err := tollgate.ReportUsage(r.Context(), uint32(cost))
			if err != nil || res.GetDuplicate() {
				http.Error(w, "report failed", http.StatusInternalServerError)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
	})
	s := httptest.NewServer(tollgate.Middleware(c, o)(mux))
	t.Cleanup(s.Close)
	return s
}

func TestReportUsageFromAHandlerPutsTheKeyInDebt(t *testing.T) {
	srv := sharedServer(t)
	c := newClient(t, srv.url(), tollgate.Options{})
	key := createKey(t, c, "acme")
	app := usageApp(t, c, tollgate.MiddlewareOptions{})
	// 1 charged by the decision + 5 reported, on a bucket of 2: a debt.
	if r := call(t, "GET", app.URL+"/v1/limited?report=5", "x-api-key", key.GetSecret()); r.status != 200 {
		t.Fatalf("reporting request: status %d, body %s", r.status, r.body)
	}
	// Without the report this second request would still fit (2 per minute).
	if r := call(t, "GET", app.URL+"/v1/limited", "x-api-key", key.GetSecret()); r.status != 429 {
		t.Fatalf("after the report: status %d, want 429 (the debt)", r.status)
	}
}

func TestUsageAfterResponseReportsTheFinishedResponsesCost(t *testing.T) {
	srv := sharedServer(t)
	done := make(chan error, 4)
	c := newClient(t, srv.url(), tollgate.Options{DialOptions: []grpc.DialOption{reportsDone(done)}})
	key := createKey(t, c, "acme")
	calls := 0
	app := usageApp(t, c, tollgate.MiddlewareOptions{
		UsageAfterResponse: func(r *http.Request, status int, _ http.Header) uint32 {
			calls++
			if status != http.StatusOK {
				t.Errorf("UsageAfterResponse saw status %d", status)
			}
			n, _ := strconv.Atoi(r.Header.Get("X-Test-Usage"))
			return uint32(n)
		},
	})
	if r := call(t, "GET", app.URL+"/v1/limited", "x-api-key", key.GetSecret(), "X-Test-Usage", "5"); r.status != 200 {
		t.Fatalf("first request: status %d", r.status)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ReportUsage after the response: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no ReportUsage after the response")
	}
	if r := call(t, "GET", app.URL+"/v1/limited", "x-api-key", key.GetSecret(), "X-Test-Usage", "0"); r.status != 429 {
		t.Fatalf("after the report: status %d, want 429 (the debt)", r.status)
	}
	// A denied request never reaches the handler, so nothing is reported for it.
	if calls != 1 {
		t.Fatalf("UsageAfterResponse called %d times, want 1", calls)
	}
	select {
	case <-done:
		t.Fatal("a report of 0 (or for a denial) was sent")
	case <-time.After(100 * time.Millisecond):
	}
}

func TestReportUsageWithoutTheMiddlewareIsAnError(t *testing.T) {
	if _, err := tollgate.ReportUsage(context.Background(), 1); err != tollgate.ErrNoDecision {
		t.Fatalf("got %v, want ErrNoDecision", err)
	}
}
