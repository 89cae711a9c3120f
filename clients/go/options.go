package tollgate

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
)

// Defaults of the shared client contract (the same in every official client).
const (
	// DefaultServer is the address used when neither Options.Server nor
	// $TOLLGATE_SERVER is set: Tollgate's main port on loopback.
	DefaultServer = "http://127.0.0.1:50051"
	// DefaultTimeout is the deadline of one TollgateService call, retries included.
	DefaultTimeout = 200 * time.Millisecond
	// DefaultManagementTimeout is the deadline of one KeyService call, retries
	// included, but for ExportKeys and ImportKeys (DefaultBulkTimeout).
	DefaultManagementTimeout = 2 * time.Second
	// DefaultBulkTimeout is the deadline of one ExportKeys call (one page) or
	// ImportKeys call (one batch of up to 500 records), retries included.
	DefaultBulkTimeout = 30 * time.Second
	// DefaultMaxRetries is how many times a safe call is repeated after UNAVAILABLE.
	DefaultMaxRetries = 2
	// DefaultRetryBaseDelay is the first backoff step (full jitter: a random wait in [0, step)).
	DefaultRetryBaseDelay = 25 * time.Millisecond
	// DefaultRetryMaxDelay caps a backoff step.
	DefaultRetryMaxDelay = 250 * time.Millisecond
	// DefaultBreakerFailures is how many consecutive UNAVAILABLE or deadline
	// failures open the breaker.
	DefaultBreakerFailures = 5
	// DefaultBreakerOpenTimeout is how long the breaker stays open before it lets one call try.
	DefaultBreakerOpenTimeout = time.Second
	// DefaultAllowCacheEntries bounds the allow-cache (least recently used entries go first).
	DefaultAllowCacheEntries = 10000
	// MaxAllowCacheTTL is the longest an allowed decision is reused: Tollgate's
	// documented revocation bound (TOLLGATE_CACHE_TTL_MS, default 5000 ms). A
	// longer AllowCache.TTL is clamped to it, so a revoked key is refused within
	// this time even through the cache.
	MaxAllowCacheTTL = 5 * time.Second
)

// Options configure a [Client]. The zero value is a working configuration:
// every field has a default, and the environment is read as the `tollgate` CLI
// reads it. Explicit fields override the environment.
type Options struct {
	// Server is Tollgate's main port as a URL: http://host:port (gRPC over
	// HTTP/2 cleartext) or https://host:port (gRPC over TLS).
	// Default: $TOLLGATE_SERVER, else DefaultServer.
	Server string
	// ManagementToken is sent as `authorization: Bearer <token>` on every
	// KeyService call and on RotateKey by key id. Never logged.
	// Default: ManagementTokenFile's contents, else the trimmed contents of
	// $TOLLGATE_MANAGEMENT_TOKEN_FILE, else $TOLLGATE_MANAGEMENT_TOKEN, else none
	// (a server in dev mode needs none on loopback).
	ManagementToken string
	// ManagementTokenFile is a file holding the management token (trimmed).
	ManagementTokenFile string
	// Timeout is the deadline of one TollgateService call (Authorize,
	// CheckRateLimit, RecordEvent, RotateKey), retries included. A context
	// with an earlier deadline wins. Default: DefaultTimeout (200 ms).
	Timeout time.Duration
	// ManagementTimeout is the deadline of one KeyService call, retries
	// included, but for ExportKeys and ImportKeys (BulkTimeout).
	// Default: DefaultManagementTimeout (2 s).
	ManagementTimeout time.Duration
	// BulkTimeout is the deadline of one ExportKeys call (one page) or
	// ImportKeys call (one batch), retries included.
	// Default: DefaultBulkTimeout (30 s).
	BulkTimeout time.Duration
	// Retry tunes the retries of safe calls.
	Retry RetryOptions
	// Breaker tunes the client's circuit breaker.
	Breaker BreakerOptions
	// AllowCache turns on and tunes the allow-cache (off by default).
	AllowCache AllowCacheOptions
	// TLSConfig is used for an https:// Server. Default: the system roots.
	TLSConfig *tls.Config
	// Logger receives the client's few log lines (breaker state changes).
	// Default: slog.Default().
	Logger *slog.Logger
	// DialOptions are appended to the client's own gRPC dial options, e.g. a
	// unary interceptor for tracing. Interceptors given here run inside the
	// client's (they see every attempt of a retried call).
	DialOptions []grpc.DialOption
}

// RetryOptions tune the retries of calls that are safe to repeat (see
// [Retryable]). Only UNAVAILABLE is retried, never past the call's deadline.
type RetryOptions struct {
	// MaxRetries is how many times a call is repeated after its first attempt.
	// 0 means DefaultMaxRetries (2); a negative value turns retries off.
	MaxRetries int
	// BaseDelay is the first backoff step; step n is BaseDelay·2ⁿ capped at
	// MaxDelay, and the wait is a random duration in [0, step) (full jitter).
	// Default: DefaultRetryBaseDelay (25 ms).
	BaseDelay time.Duration
	// MaxDelay caps a backoff step. Default: DefaultRetryMaxDelay (250 ms).
	MaxDelay time.Duration
}

// BreakerOptions tune the client's circuit breaker. It counts calls (after
// their retries), not attempts; only UNAVAILABLE and deadline-exceeded calls
// are failures, any answer of the server (a denial, NOT_FOUND, …) is a success,
// and a call cancelled by its caller counts as neither.
type BreakerOptions struct {
	// Disabled turns the breaker off.
	Disabled bool
	// Failures is how many consecutive failures open the breaker.
	// Default: DefaultBreakerFailures (5).
	Failures int
	// OpenTimeout is how long the breaker stays open before one call may try
	// (half-open); that call's outcome closes or reopens it.
	// Default: DefaultBreakerOpenTimeout (1 s).
	OpenTimeout time.Duration
}

// AllowCacheOptions configure the optional allow-cache. It keeps only ALLOWED
// Authorize decisions made WITHOUT apply_limits (a charging call is never
// answered from a cache), keyed by a SHA-256 of (key, method, path, endpoint,
// client IP, scopes) — never the raw key — for at most TTL, which is clamped to
// MaxAllowCacheTTL (5 s, Tollgate's revocation bound): a key revoked on the
// server may keep being allowed from the cache for at most that long.
type AllowCacheOptions struct {
	// TTL is how long an allowed decision is reused; 0 (the default) turns the
	// cache off. Values above MaxAllowCacheTTL are clamped to it.
	TTL time.Duration
	// MaxEntries bounds the cache. Default: DefaultAllowCacheEntries (10 000).
	MaxEntries int
}

// resolved is Options with the environment read and the defaults applied.
type resolved struct {
	target   string // host:port for grpc.NewClient
	useTLS   bool
	token    string
	timeout  time.Duration
	mgmt     time.Duration
	bulk     time.Duration
	retry    RetryOptions
	breaker  BreakerOptions
	cacheTTL time.Duration
	cacheMax int
	tls      *tls.Config
	logger   *slog.Logger
	dialOpts []grpc.DialOption
}

func resolve(o Options) (resolved, error) {
	r := resolved{
		timeout:  orDuration(o.Timeout, DefaultTimeout),
		mgmt:     orDuration(o.ManagementTimeout, DefaultManagementTimeout),
		bulk:     orDuration(o.BulkTimeout, DefaultBulkTimeout),
		tls:      o.TLSConfig,
		logger:   o.Logger,
		dialOpts: o.DialOptions,
		breaker:  o.Breaker,
	}
	if r.logger == nil {
		r.logger = slog.Default()
	}
	server := o.Server
	if server == "" {
		server = os.Getenv("TOLLGATE_SERVER")
	}
	if server == "" {
		server = DefaultServer
	}
	u, err := url.Parse(server)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return r, fmt.Errorf("tollgate: server %q is not an http:// or https:// URL with a host", server)
	}
	r.useTLS = u.Scheme == "https"
	r.target = u.Host
	if u.Port() == "" {
		if r.useTLS {
			r.target += ":443"
		} else {
			r.target += ":80"
		}
	}

	token, err := readToken(o.ManagementToken, o.ManagementTokenFile)
	if err != nil {
		return r, err
	}
	r.token = token

	r.retry = o.Retry
	if r.retry.MaxRetries == 0 {
		r.retry.MaxRetries = DefaultMaxRetries
	}
	r.retry.BaseDelay = orDuration(r.retry.BaseDelay, DefaultRetryBaseDelay)
	r.retry.MaxDelay = orDuration(r.retry.MaxDelay, DefaultRetryMaxDelay)
	if r.breaker.Failures <= 0 {
		r.breaker.Failures = DefaultBreakerFailures
	}
	r.breaker.OpenTimeout = orDuration(r.breaker.OpenTimeout, DefaultBreakerOpenTimeout)
	r.cacheTTL = min(o.AllowCache.TTL, MaxAllowCacheTTL)
	r.cacheMax = o.AllowCache.MaxEntries
	if r.cacheMax <= 0 {
		r.cacheMax = DefaultAllowCacheEntries
	}
	return r, nil
}

// readToken applies the precedence explicit token > explicit file >
// $TOLLGATE_MANAGEMENT_TOKEN_FILE > $TOLLGATE_MANAGEMENT_TOKEN, like the CLI.
// Errors name the file, never its contents.
func readToken(token, file string) (string, error) {
	if token != "" {
		return token, nil
	}
	if file == "" {
		file = os.Getenv("TOLLGATE_MANAGEMENT_TOKEN_FILE")
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("tollgate: reading the management token file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return os.Getenv("TOLLGATE_MANAGEMENT_TOKEN"), nil
}

func orDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
