// Package tollgate is the Go client and net/http middleware of Tollgate, the
// API-key, rate-limit and security-event sidecar.
//
// Protect an application in one line:
//
//	client, err := tollgate.NewClient(tollgate.Options{})
//	...
//	http.ListenAndServe(addr, tollgate.Middleware(client, tollgate.MiddlewareOptions{})(mux))
//
// The [Client] speaks gRPC over HTTP/2 cleartext (or TLS for an https://
// server) to Tollgate's main port and has one typed method per RPC of
// tollgate.v1.TollgateService and tollgate.v1.KeyService (and [Client.ExportAll],
// which pages through ExportKeys); request and response types are the
// generated ones in github.com/tollgate/tollgate/clients/go/gen/tollgate/v1.
//
// Every call gets a deadline (200 ms for TollgateService, 2 s for KeyService,
// 30 s for its bulk ExportKeys and ImportKeys, retries included), is retried with exponential backoff and full jitter only
// on UNAVAILABLE and only when repeating it is safe (see [Retryable]), and
// goes through one circuit breaker per client (open after 5 consecutive
// UNAVAILABLE or deadline failures, half-open after 1 s; while open, calls fail
// at once with [ErrCircuitOpen], an UNAVAILABLE status). An optional
// allow-cache keeps allowed Authorize decisions made without apply_limits for
// at most 5 s, Tollgate's documented revocation bound.
//
// Nothing in this package logs, prints or puts into an error an API key or the
// management token.
package tollgate
