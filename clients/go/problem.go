package tollgate

import (
	"encoding/json"
	"net/http"
	"strconv"

	tollgatev1 "github.com/tollgate/tollgate/clients/go/gen/tollgate/v1"
)

// QuotaExceededType is the RFC 9457 problem type of 429 answers (RATE_LIMITED
// and BLOCKED): the IETF rate-limit problem type.
const QuotaExceededType = "https://iana.org/assignments/http-problem-types#quota-exceeded"

// Problem is an RFC 9457 application/problem+json body, as the middleware
// answers every refusal.
type Problem struct {
	// Type is a URI naming the problem; `about:blank` means "see Status".
	Type string `json:"type"`
	// Title is short and fixed per Type (the reason phrase for about:blank).
	Title string `json:"title"`
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Detail is Tollgate's message for this decision (never a secret).
	Detail string `json:"detail,omitempty"`
	// DecisionID is Tollgate's decision id, when Tollgate decided.
	DecisionID string `json:"decision_id,omitempty"`
	// Reason is the decision's reason (`REASON_UNKNOWN_KEY`, …) or, when
	// Tollgate did not decide, `TOLLGATE_UNAVAILABLE` / `TOLLGATE_ERROR`.
	Reason string `json:"reason,omitempty"`
}

// Reasons of problems the middleware answers without a Tollgate decision.
const (
	// ReasonUnavailable: Tollgate could not be reached (fail mode closed), 503.
	ReasonUnavailable = "TOLLGATE_UNAVAILABLE"
	// ReasonBadRequest: the request cannot be checked (e.g. an encoded `/`
	// in its path, an oversized key), 400.
	ReasonBadRequest = "TOLLGATE_BAD_REQUEST"
	// ReasonError: the check failed in a way that is a bug or a
	// misconfiguration (see the log line), 500.
	ReasonError = "TOLLGATE_ERROR"
)

// problemForDenial builds the problem of a denied decision.
func problemForDenial(resp *tollgatev1.AuthorizeResponse) Problem {
	st := int(resp.GetHttpStatus())
	if st < 400 || st > 599 {
		st = http.StatusForbidden // a denial always refuses, whatever the field says
	}
	p := Problem{
		Type:       "about:blank",
		Title:      http.StatusText(st),
		Status:     st,
		Detail:     resp.GetMessage(),
		DecisionID: resp.GetDecisionId(),
		Reason:     resp.GetReason().String(),
	}
	if st == http.StatusTooManyRequests {
		p.Type = QuotaExceededType
		p.Title = "Quota exceeded"
	}
	return p
}

// writeProblem answers p as application/problem+json.
func writeProblem(w http.ResponseWriter, p Problem) {
	body, _ := json.Marshal(p) // only strings and an int: cannot fail
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}

func simpleProblem(st int, reason, detail string) Problem {
	return Problem{Type: "about:blank", Title: http.StatusText(st), Status: st, Detail: detail, Reason: reason}
}
