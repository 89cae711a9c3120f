package tollgate

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	tollgatev1 "github.com/tollgate/tollgate/clients/go/gen/tollgate/v1"
)

// ErrNoDecision is returned by [ReportUsage] for a request that did not go
// through the middleware (skipped path, or no Middleware in front).
var ErrNoDecision = errors.New("tollgate: the request has no Tollgate decision to report usage against")

// usageReportTimeout bounds a report sent after the response, whose request
// context may already be done.
const usageReportTimeout = 2 * time.Second

// reporter holds what a usage report for one allowed request needs. It keeps
// the presented key (the report's credential, so no management token is
// needed) and is never printed.
type reporter struct {
	c        *Client
	apiKey   string
	clientIP string
	method   string
	path     string
	seq      atomic.Int64
}

// ReportUsage reports a cost known only now (tokens of an LLM answer, rows of
// an export) for the request whose context is ctx: it is charged to the
// limits of its key, endpoint and client IP without denying it, and the next
// decision sees the debt. Each call is one report with its own idempotency id
// (`<decision id>.<n>`), retried safely by the client. On fail-open it does
// nothing and returns (nil, nil): there is no identity to charge.
func ReportUsage(ctx context.Context, cost uint32) (*tollgatev1.ReportUsageResponse, error) {
	d := DecisionFrom(ctx)
	if d == nil {
		return nil, ErrNoDecision
	}
	if d.FailOpen || d.report == nil {
		return nil, nil
	}
	return d.report.send(ctx, d, cost)
}

func (r *reporter) send(ctx context.Context, d *Decision, cost uint32) (*tollgatev1.ReportUsageResponse, error) {
	req := &tollgatev1.ReportUsageRequest{
		Id:       d.DecisionID + "." + strconv.FormatInt(r.seq.Add(1), 10),
		ApiKey:   r.apiKey,
		ClientIp: r.clientIP,
		Cost:     cost,
	}
	if d.Endpoint != "" {
		req.Endpoint = d.Endpoint
	} else {
		req.Method, req.Path = r.method, r.path
	}
	return r.c.ReportUsage(ctx, req)
}

// statusRecorder remembers the status a handler wrote; Unwrap lets
// http.ResponseController reach the underlying writer (Flush, deadlines).
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// serveReporting runs next, then reports UsageAfterResponse's cost in the
// background (the handler has returned; the report must not hold the
// response). A failed report is logged, never surfaced.
func (m *middleware) serveReporting(next http.Handler, w http.ResponseWriter, r *http.Request, d *Decision) {
	rec := &statusRecorder{ResponseWriter: w}
	next.ServeHTTP(rec, r)
	if d.report == nil || d.FailOpen {
		return
	}
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	cost := m.o.UsageAfterResponse(r, status, w.Header())
	if cost == 0 {
		return
	}
	ctx := context.WithoutCancel(r.Context())
	go func() {
		ctx, cancel := context.WithTimeout(ctx, usageReportTimeout)
		defer cancel()
		if _, err := d.report.send(ctx, d, cost); err != nil {
			m.log.Warn("tollgate: ReportUsage after the response failed", "decision", d.DecisionID, "err", err)
		}
	}()
}
