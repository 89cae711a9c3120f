package tollgate

import (
	"net/http"
	"slices"
)

// protected is a handler with per-route Tollgate options.
type protected struct {
	endpoint string
	scopes   []string
	next     http.Handler
}

// Protect gives one route its policy endpoint name and extra required scopes:
//
//	mux.Handle("POST /v1/exports/", tollgate.Protect("export", "exports:run")(exportHandler))
//
// It needs [Middleware] in front. When the router can be asked which handler
// serves a request before serving it — http.ServeMux (its Handler method), or
// a Protect-wrapped handler given to Middleware directly — Middleware makes
// one Authorize call with these options. Otherwise (e.g. chi's r.With, after
// r.Use(tollgate.Middleware(...))) the request was already authorized with the
// endpoint matched from method and path, limits charged; Protect then makes a
// second, non-charging Authorize with its endpoint and scopes, so the key, IP
// and scopes are checked for this route (the limits charged stay those of
// the matched endpoint). On a skipped path Protect authorizes fully itself.
// Without Middleware in front Protect answers 500: a wiring mistake.
func Protect(endpoint string, scopes ...string) func(http.Handler) http.Handler {
	scopes = slices.Clone(scopes)
	return func(next http.Handler) http.Handler {
		return &protected{endpoint: endpoint, scopes: scopes, next: next}
	}
}

func (p *protected) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := stateFrom(r.Context())
	if s == nil {
		// Refuse rather than serve the route unprotected.
		writeProblem(w, simpleProblem(http.StatusInternalServerError, ReasonError, "tollgate.Protect is used without tollgate.Middleware in front"))
		return
	}
	switch {
	case s.decision != nil && (s.decision.route == p || s.decision.FailOpen):
		p.next.ServeHTTP(w, r)
		return
	case s.decision == nil: // a skipped path: this route is protected all the same
		d, ok := s.m.authorize(w, r, p.endpoint, append(slices.Clone(s.m.o.Scopes), p.scopes...), !s.m.o.NoLimits)
		if !ok {
			return
		}
		d.route = p
		p.next.ServeHTTP(w, r.WithContext(withState(r.Context(), &state{m: s.m, decision: d})))
	default: // authorized before routing without this route's options
		d, ok := s.m.authorize(w, r, p.endpoint, append(slices.Clone(s.m.o.Scopes), p.scopes...), false)
		if !ok {
			return
		}
		d.route = p
		d.RateLimit = s.decision.RateLimit // what was charged
		p.next.ServeHTTP(w, r.WithContext(withState(r.Context(), &state{m: s.m, decision: d})))
	}
}

// routeFinder is a router that tells which handler serves a request, like
// (*http.ServeMux).Handler.
type routeFinder interface {
	Handler(r *http.Request) (h http.Handler, pattern string)
}

// lookupRoute finds the Protect-wrapped handler that will serve r, if next
// can tell before serving it.
func lookupRoute(next http.Handler, r *http.Request) *protected {
	for range 4 { // a mux inside a mux, at most a few levels
		switch h := next.(type) {
		case *protected:
			return h
		case routeFinder:
			next, _ = h.Handler(r)
		default:
			return nil
		}
	}
	return nil
}
