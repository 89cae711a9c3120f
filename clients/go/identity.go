package tollgate

import (
	"context"
	"maps"
	"slices"

	tollgatev1 "github.com/tollgate/tollgate/clients/go/gen/tollgate/v1"
)

// Identity is who is calling: the recognised key, never its secret.
type Identity struct {
	// KeyID is the key's id (`key_…`), not secret.
	KeyID string `json:"key_id"`
	// Owner is the user, team or tenant the key belongs to.
	Owner string `json:"owner"`
	// Tier is the key's tier in the policy.
	Tier string `json:"tier"`
	// Scopes are the scopes granted to the key.
	Scopes []string `json:"scopes"`
	// Metadata are the key's labels.
	Metadata map[string]string `json:"metadata"`
	// Environment is the key's environment tag (`live`, `test`, …).
	Environment string `json:"environment"`
}

// Decision is what the middleware decided for a request that reached the
// handler. Get it with [DecisionFrom].
type Decision struct {
	// Identity is the caller; nil when FailOpen.
	Identity *Identity
	// DecisionID is Tollgate's id of the decision (also in its access log).
	DecisionID string
	// Endpoint is the policy endpoint that matched, empty if none.
	Endpoint string
	// Hints are the key's lifecycle hints (expires soon, rotation due, …).
	Hints *tollgatev1.KeyHints
	// RateLimit is the rate-limit result when limits were applied.
	RateLimit *tollgatev1.RateLimitResult
	// DecidedLocally is true when Tollgate decided without its store (the
	// endpoint's policy fail_mode is open and the store was unreachable).
	DecidedLocally bool
	// FailOpen is true when Tollgate itself could not be reached and the
	// middleware's FailMode is FailOpen: the request was let through
	// unauthenticated, Identity is nil, and the handler must decide what an
	// anonymous caller may do.
	FailOpen bool

	// route is the Protect route whose options this decision used, if any.
	route *protected
	// report sends this request's usage reports (nil on fail-open).
	report *reporter
}

type ctxKey struct{}

// state travels in the request context from Middleware to handlers.
type state struct {
	m        *middleware
	decision *Decision // nil when the request was skipped
}

// IdentityFrom returns the caller of an authorized request, or nil (skipped
// path, fail-open, or no Middleware in front).
func IdentityFrom(ctx context.Context) *Identity {
	if d := DecisionFrom(ctx); d != nil {
		return d.Identity
	}
	return nil
}

// DecisionFrom returns the middleware's decision for the request, or nil
// when the request did not go through Tollgate (skipped path, no Middleware).
func DecisionFrom(ctx context.Context) *Decision {
	if s, ok := ctx.Value(ctxKey{}).(*state); ok {
		return s.decision
	}
	return nil
}

func withState(ctx context.Context, s *state) context.Context {
	return context.WithValue(ctx, ctxKey{}, s)
}

func stateFrom(ctx context.Context) *state {
	s, _ := ctx.Value(ctxKey{}).(*state)
	return s
}

func decisionOf(resp *tollgatev1.AuthorizeResponse, route *protected) *Decision {
	d := &Decision{
		DecisionID:     resp.GetDecisionId(),
		Endpoint:       resp.GetEndpoint(),
		Hints:          resp.GetHints(),
		RateLimit:      resp.GetRateLimit(),
		DecidedLocally: resp.GetDecidedLocally(),
		route:          route,
	}
	if id := resp.GetIdentity(); id != nil {
		d.Identity = &Identity{
			KeyID:       id.GetKeyId(),
			Owner:       id.GetOwner(),
			Tier:        id.GetTier(),
			Scopes:      slices.Clone(id.GetScopes()),
			Metadata:    maps.Clone(id.GetMetadata()),
			Environment: id.GetEnvironment(),
		}
	}
	return d
}
