package tollgate

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tollgatev1 "github.com/tollgate/tollgate/clients/go/gen/tollgate/v1"
)

// FailMode says what the middleware does when Tollgate cannot be reached
// (UNAVAILABLE, deadline exceeded, or the client's breaker open).
type FailMode int

const (
	// FailClosed (the default) answers 503 with a problem+json body.
	FailClosed FailMode = iota
	// FailOpen lets the request through without identity; the handler sees
	// DecisionFrom(ctx).FailOpen == true and IdentityFrom(ctx) == nil.
	FailOpen
)

// MiddlewareOptions configure [Middleware]. The zero value protects every
// path with the x-api-key header, trusts no proxy and fails closed.
type MiddlewareOptions struct {
	// HeaderName is the request header carrying the API key.
	// Default: "x-api-key".
	HeaderName string
	// Endpoint is the policy endpoint name for every request. Default: none,
	// Tollgate matches the endpoint from the method and path. A route can
	// name its own with [Protect].
	Endpoint string
	// Scopes are required of every request, in addition to the endpoint's.
	Scopes []string
	// SkipPaths are paths (exact, without query) that bypass Tollgate,
	// e.g. "/healthz".
	SkipPaths []string
	// SkipPrefixes are path prefixes that bypass Tollgate, e.g. "/static/".
	SkipPrefixes []string
	// TrustedProxies are the proxies (CIDRs or addresses) whose
	// X-Forwarded-For entries are believed, walking back from the socket
	// peer. Default: none — the client IP is the socket peer.
	TrustedProxies []string
	// TrustedProxyCount, if > 0, believes exactly that many hops of
	// X-Forwarded-For (the number of proxies in front of the app) instead of
	// a list.
	TrustedProxyCount int
	// FailMode applies when Tollgate cannot be reached. Default: FailClosed.
	FailMode FailMode
	// NoLimits authorizes without charging rate limits (apply_limits=false).
	// Only such decisions can come from the client's allow-cache.
	NoLimits bool
	// Logger receives the middleware's log lines (never a key).
	// Default: slog.Default().
	Logger *slog.Logger
	// UsageAfterResponse, if set, is called once the handler has returned
	// for a request Tollgate allowed, with the status written and the
	// response headers: a cost it returns (e.g. LLM tokens from a header the
	// handler set) is reported with ReportUsage in the background, charged to
	// the request's limits without undoing the response; 0 reports nothing.
	// Handlers can also call [ReportUsage] themselves.
	UsageAfterResponse func(r *http.Request, status int, header http.Header) uint32
}

type middleware struct {
	c        *Client
	o        MiddlewareOptions
	header   string
	trust    proxyTrust
	log      *slog.Logger
	skip     map[string]bool
	prefixes []string
}

// Middleware returns net/http middleware that authorizes every request with
// Tollgate before calling the next handler. It works with any router that
// takes func(http.Handler) http.Handler (http.ServeMux, chi, gorilla/mux,
// echo through echo.WrapMiddleware).
//
// For each request not skipped it calls Authorize with the key from
// HeaderName, the method, the path (escaped, without query), the client IP
// and apply_limits (unless NoLimits). On allow the decision's headers
// (RateLimit-Policy, RateLimit) are set and the handler gets the identity
// through the context ([IdentityFrom], [DecisionFrom]). On deny it answers the
// decision's status with all its headers (WWW-Authenticate, Retry-After, …)
// and an RFC 9457 problem+json body. When Tollgate cannot be reached, FailMode
// decides. An INVALID_ARGUMENT caused by the request itself (an encoded `/`
// in the path, an oversized key) is a 400; any other is a bug or a
// misconfiguration: 500, with a log line naming the field.
//
// Per-route endpoint names and scopes come from handlers wrapped in
// [Protect]. Middleware panics if TrustedProxies holds an entry that is not a
// CIDR or an IP address (a wiring mistake, found at startup).
func Middleware(c *Client, o MiddlewareOptions) func(http.Handler) http.Handler {
	if c == nil {
		panic("tollgate.Middleware: nil *Client")
	}
	trust, err := newProxyTrust(o.TrustedProxies, o.TrustedProxyCount)
	if err != nil {
		panic(err.Error())
	}
	m := &middleware{c: c, o: o, header: o.HeaderName, trust: trust, log: o.Logger, skip: map[string]bool{}}
	if m.header == "" {
		m.header = "x-api-key"
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	for _, p := range o.SkipPaths {
		m.skip[p] = true
	}
	m.prefixes = slices.Clone(o.SkipPrefixes)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if m.skipped(r.URL.Path) {
				next.ServeHTTP(w, r.WithContext(withState(r.Context(), &state{m: m})))
				return
			}
			route := lookupRoute(next, r)
			endpoint, scopes := m.o.Endpoint, m.o.Scopes
			if route != nil {
				endpoint, scopes = route.endpoint, append(slices.Clone(scopes), route.scopes...)
			}
			d, ok := m.authorize(w, r, endpoint, scopes, !m.o.NoLimits)
			if !ok {
				return
			}
			d.route = route
			r = r.WithContext(withState(r.Context(), &state{m: m, decision: d}))
			if m.o.UsageAfterResponse != nil {
				m.serveReporting(next, w, r, d)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func (m *middleware) skipped(path string) bool {
	if m.skip[path] {
		return true
	}
	for _, p := range m.prefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// authorize asks Tollgate and, unless the request may proceed, answers it.
// It returns the decision to hand on, and false when it has answered.
func (m *middleware) authorize(w http.ResponseWriter, r *http.Request, endpoint string, scopes []string, applyLimits bool) (*Decision, bool) {
	req := &tollgatev1.AuthorizeRequest{
		ApiKey:         r.Header.Get(m.header),
		Method:         r.Method,
		Path:           r.URL.EscapedPath(),
		ClientIp:       m.trust.clientIP(r),
		RequiredScopes: scopes,
		ApplyLimits:    applyLimits,
		Endpoint:       endpoint,
	}
	resp, err := m.c.Authorize(r.Context(), req)
	if err != nil {
		return m.failed(w, r, endpoint, err)
	}
	if !resp.GetAllowed() {
		h := w.Header()
		for _, hd := range resp.GetResponseHeaders() {
			h.Add(hd.GetName(), hd.GetValue())
		}
		writeProblem(w, problemForDenial(resp))
		return nil, false
	}
	h := w.Header()
	for _, hd := range resp.GetResponseHeaders() {
		h.Add(hd.GetName(), hd.GetValue())
	}
	d := decisionOf(resp, nil)
	d.report = &reporter{c: m.c, apiKey: req.ApiKey, clientIP: req.ClientIp, method: req.Method, path: req.Path}
	return d, true
}

// requestFields are the Authorize fields filled from the HTTP request: an
// INVALID_ARGUMENT naming only these is the caller's fault (400), not a bug.
var requestFields = map[string]bool{"api_key": true, "method": true, "path": true, "client_ip": true}

// failed handles a failed Authorize call; it answers unless failing open.
func (m *middleware) failed(w http.ResponseWriter, r *http.Request, endpoint string, err error) (*Decision, bool) {
	if r.Context().Err() != nil && errors.Is(r.Context().Err(), context.Canceled) {
		// The caller went away: nobody reads an answer, and it is not an outage.
		m.log.Debug("tollgate: request cancelled before the decision", "path", r.URL.Path)
		return nil, false
	}
	if Unreachable(err) {
		if m.o.FailMode == FailOpen {
			m.log.Warn("tollgate: unreachable, failing open", "path", r.URL.Path, "err", err)
			return &Decision{FailOpen: true}, true
		}
		m.log.Warn("tollgate: unreachable, failing closed", "path", r.URL.Path, "err", err)
		writeProblem(w, simpleProblem(http.StatusServiceUnavailable, ReasonUnavailable, "The API key check is unavailable; try again later."))
		return nil, false
	}
	if status.Code(err) == codes.InvalidArgument {
		fvs := FieldViolations(err)
		fields := make([]string, 0, len(fvs))
		callerFault := len(fvs) > 0
		for _, v := range fvs {
			fields = append(fields, v.Field+": "+v.Description)
			if !requestFields[v.Field] {
				callerFault = false
			}
		}
		if callerFault {
			m.log.Info("tollgate: request refused as unusable", "path", r.URL.Path, "fields", fields)
			writeProblem(w, simpleProblem(http.StatusBadRequest, ReasonBadRequest, "The request cannot be checked: "+strings.Join(fields, "; ")))
			return nil, false
		}
		m.log.Error("tollgate: Authorize refused its input (a bug or a misconfiguration of the middleware or Protect)",
			"endpoint", endpoint, "fields", fields, "err", status.Convert(err).Message())
		writeProblem(w, simpleProblem(http.StatusInternalServerError, ReasonError, ""))
		return nil, false
	}
	m.log.Error("tollgate: Authorize failed", "path", r.URL.Path, "code", status.Code(err).String(), "err", status.Convert(err).Message())
	writeProblem(w, simpleProblem(http.StatusInternalServerError, ReasonError, ""))
	return nil, false
}
