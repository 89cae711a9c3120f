package tollgate

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"github.com/sony/gobreaker/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	// Registers google.rpc.BadRequest so status details decode (FieldViolations).
	_ "google.golang.org/genproto/googleapis/rpc/errdetails"

	tollgatev1 "github.com/tollgate/tollgate/clients/go/gen/tollgate/v1"
)

// Client is a Tollgate client: one gRPC connection (HTTP/2, multiplexed) to
// the main port, with deadlines, safe retries, a circuit breaker and the
// optional allow-cache. It is safe for concurrent use; make one per process
// and Close it at shutdown.
type Client struct {
	conn     *grpc.ClientConn
	tollgate tollgatev1.TollgateServiceClient
	keys     tollgatev1.KeyServiceClient
	cache    *allowCache
	breaker  *gobreaker.CircuitBreaker[struct{}]
	cacheTTL time.Duration
	target   string
}

// NewClient builds a client from opts (see [Options] for the defaults and the
// environment variables read). It does not connect: the connection is made
// on the first call and re-made, backing off from 50 ms to 1 s, whenever it
// drops, so a sidecar that restarts is used again within about a second.
func NewClient(opts Options) (*Client, error) {
	r, err := resolve(opts)
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if r.useTLS {
		cfg := r.tls
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		creds = credentials.NewTLS(cfg)
	}
	c := &Client{cacheTTL: r.cacheTTL, target: r.target}
	if !r.breaker.Disabled {
		c.breaker = newBreaker(r.breaker, r.logger)
	}
	interceptors := []grpc.UnaryClientInterceptor{deadlineInterceptor(r.timeout, r.mgmt, r.bulk)}
	if c.breaker != nil {
		interceptors = append(interceptors, breakerInterceptor(c.breaker))
	}
	interceptors = append(interceptors, retryInterceptor(r.retry), tokenInterceptor(r.token))
	dial := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithChainUnaryInterceptor(interceptors...),
		// Streams get the token only: no deadline unless the caller's context
		// has one, no retry (a new stream would repeat or miss lines), no breaker.
		grpc.WithStreamInterceptor(streamTokenInterceptor(r.token)),
		// Retries are this client's, decided per call; a service config must
		// not add retries of charging calls behind its back.
		grpc.WithDisableRetry(),
		grpc.WithDisableServiceConfig(),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		}),
	}
	dial = append(dial, r.dialOpts...)
	conn, err := grpc.NewClient("passthrough:///"+r.target, dial...)
	if err != nil {
		return nil, fmt.Errorf("tollgate: %w", err)
	}
	c.conn = conn
	c.tollgate = tollgatev1.NewTollgateServiceClient(conn)
	c.keys = tollgatev1.NewKeyServiceClient(conn)
	c.cache = newAllowCache(r.cacheTTL, r.cacheMax)
	return c, nil
}

// Close closes the connection. Calls in flight fail with CANCELED.
func (c *Client) Close() error { return c.conn.Close() }

// Target is the host:port the client talks to.
func (c *Client) Target() string { return c.target }

// AllowCacheTTL is the effective allow-cache TTL (0: the cache is off),
// after clamping to MaxAllowCacheTTL.
func (c *Client) AllowCacheTTL() time.Duration { return c.cacheTTL }

// TollgateService is the generated stub on this client's connection; its calls
// get the same deadlines, retries, breaker and token (not the allow-cache).
func (c *Client) TollgateService() tollgatev1.TollgateServiceClient { return c.tollgate }

// KeyService is the generated stub on this client's connection, like TollgateService.
func (c *Client) KeyService() tollgatev1.KeyServiceClient { return c.keys }

// deadlineInterceptor gives every call its per-service deadline (retries
// included; the bulk one for ExportKeys and ImportKeys) unless the caller's
// context already ends sooner.
func deadlineInterceptor(tollgate, management, bulk time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		d := management
		switch {
		case strings.HasPrefix(method, "/"+tollgatev1.TollgateService_ServiceDesc.ServiceName+"/"):
			d = tollgate
		case method == tollgatev1.KeyService_ExportKeys_FullMethodName, method == tollgatev1.KeyService_ImportKeys_FullMethodName:
			d = bulk
		}
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// tokenInterceptor sends the management token where the server asks for it:
// every KeyService call, RotateKey by key id (self-rotation by secret needs
// none, and gets none) and ReportUsage without the reported request's own key.
func tokenInterceptor(token string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if token != "" && needsToken(method, req) {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

func streamTokenInterceptor(token string) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if token != "" && needsToken(method, nil) {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		return streamer(ctx, desc, cc, method, opts...)
	}
}

func needsToken(method string, req any) bool {
	if strings.HasPrefix(method, "/"+tollgatev1.KeyService_ServiceDesc.ServiceName+"/") {
		return true
	}
	if method == tollgatev1.TollgateService_RotateKey_FullMethodName {
		r, ok := req.(*tollgatev1.RotateKeyRequest)
		return ok && r.GetKeyId() != ""
	}
	// A report carrying the reported request's own key needs no token; by key
	// id (or for a subject) it acts on any key, so it takes the token.
	if method == tollgatev1.TollgateService_ReportUsage_FullMethodName {
		r, ok := req.(*tollgatev1.ReportUsageRequest)
		return ok && r.GetApiKey() == ""
	}
	return false
}

// Authorize checks an API key for a request (and, with apply_limits, charges
// its rate limits). A denial is an OK response with Allowed false and the
// HTTP status to answer; an error means the call failed (see [Unreachable]).
// With the allow-cache on, an allowed decision made without apply_limits is
// reused for the same key, method, path, endpoint, client IP and scopes.
func (c *Client) Authorize(ctx context.Context, req *tollgatev1.AuthorizeRequest) (*tollgatev1.AuthorizeResponse, error) {
	if c.cache == nil || !cacheable(req) {
		return c.tollgate.Authorize(ctx, req)
	}
	k := cacheKey(req)
	if resp := c.cache.get(k); resp != nil {
		return resp, nil
	}
	resp, err := c.tollgate.Authorize(ctx, req)
	if err == nil {
		c.cache.put(k, resp)
	}
	return resp, err
}

// CheckRateLimit checks and charges the limits of a key, IP or subject on an
// endpoint. Never retried: it charges and has no idempotency key.
func (c *Client) CheckRateLimit(ctx context.Context, req *tollgatev1.CheckRateLimitRequest) (*tollgatev1.CheckRateLimitResponse, error) {
	return c.tollgate.CheckRateLimit(ctx, req)
}

// RecordEvent records 1..100 security events (idempotent by event id, so it
// is retried) and returns the alerts they fired.
func (c *Client) RecordEvent(ctx context.Context, req *tollgatev1.RecordEventRequest) (*tollgatev1.RecordEventResponse, error) {
	return c.tollgate.RecordEvent(ctx, req)
}

// ReportUsage charges a cost known only after the response (tokens of an LLM
// answer, rows of an export) to the limits a CheckRateLimit with the same
// facts would charge, without denying: the next decision sees the debt.
// Idempotent by id, so it is retried. With the reported request's ApiKey no
// management token is sent (the middleware's [ReportUsage] does that).
func (c *Client) ReportUsage(ctx context.Context, req *tollgatev1.ReportUsageRequest) (*tollgatev1.ReportUsageResponse, error) {
	return c.tollgate.ReportUsage(ctx, req)
}

// RotateKey issues a new secret, by key id (sends the management token) or by
// current secret (self-rotation). Never retried.
func (c *Client) RotateKey(ctx context.Context, req *tollgatev1.RotateKeyRequest) (*tollgatev1.RotateKeyResponse, error) {
	return c.tollgate.RotateKey(ctx, req)
}

// CreateKey creates a key; the response holds its secret, once. Never retried.
func (c *Client) CreateKey(ctx context.Context, req *tollgatev1.CreateKeyRequest) (*tollgatev1.CreateKeyResponse, error) {
	return c.keys.CreateKey(ctx, req)
}

// GetKey returns a key (never its secret).
func (c *Client) GetKey(ctx context.Context, req *tollgatev1.GetKeyRequest) (*tollgatev1.GetKeyResponse, error) {
	return c.keys.GetKey(ctx, req)
}

// ListKeys lists keys by id, a page at a time.
func (c *Client) ListKeys(ctx context.Context, req *tollgatev1.ListKeysRequest) (*tollgatev1.ListKeysResponse, error) {
	return c.keys.ListKeys(ctx, req)
}

// UpdateKey changes the fields of a key named in update_mask. Never retried.
func (c *Client) UpdateKey(ctx context.Context, req *tollgatev1.UpdateKeyRequest) (*tollgatev1.UpdateKeyResponse, error) {
	return c.keys.UpdateKey(ctx, req)
}

// RevokeKey revokes a key at once and for good (idempotent, so retried).
func (c *Client) RevokeKey(ctx context.Context, req *tollgatev1.RevokeKeyRequest) (*tollgatev1.RevokeKeyResponse, error) {
	return c.keys.RevokeKey(ctx, req)
}

// ListBlocks lists active blocks, longest-lasting first.
func (c *Client) ListBlocks(ctx context.Context, req *tollgatev1.ListBlocksRequest) (*tollgatev1.ListBlocksResponse, error) {
	return c.keys.ListBlocks(ctx, req)
}

// DeleteBlock lifts a block on every replica. Never retried.
func (c *Client) DeleteBlock(ctx context.Context, req *tollgatev1.DeleteBlockRequest) (*tollgatev1.DeleteBlockResponse, error) {
	return c.keys.DeleteBlock(ctx, req)
}

// SetLimitOverride sets a key's or an owner's override of one named limit
// (raise, lower or exempt, with an optional expiry), on every replica without
// a policy reload. Never retried.
func (c *Client) SetLimitOverride(ctx context.Context, req *tollgatev1.SetLimitOverrideRequest) (*tollgatev1.SetLimitOverrideResponse, error) {
	return c.keys.SetLimitOverride(ctx, req)
}

// DeleteLimitOverride removes a key's or an owner's override of one named
// limit. Never retried.
func (c *Client) DeleteLimitOverride(ctx context.Context, req *tollgatev1.DeleteLimitOverrideRequest) (*tollgatev1.DeleteLimitOverrideResponse, error) {
	return c.keys.DeleteLimitOverride(ctx, req)
}

// ListLimitOverrides lists the overrides of a key (with its effective
// limits and where each comes from) or of an owner, or every one.
func (c *Client) ListLimitOverrides(ctx context.Context, req *tollgatev1.ListLimitOverridesRequest) (*tollgatev1.ListLimitOverridesResponse, error) {
	return c.keys.ListLimitOverrides(ctx, req)
}

// ListEvents lists recorded security events, newest first.
func (c *Client) ListEvents(ctx context.Context, req *tollgatev1.ListEventsRequest) (*tollgatev1.ListEventsResponse, error) {
	return c.keys.ListEvents(ctx, req)
}

// ListAlerts lists alerts raised by detection rules, newest first.
func (c *Client) ListAlerts(ctx context.Context, req *tollgatev1.ListAlertsRequest) (*tollgatev1.ListAlertsResponse, error) {
	return c.keys.ListAlerts(ctx, req)
}

// GetUsage returns a key's request counts over a time range.
func (c *Client) GetUsage(ctx context.Context, req *tollgatev1.GetUsageRequest) (*tollgatev1.GetUsageResponse, error) {
	return c.keys.GetUsage(ctx, req)
}

// ExportKeys returns one page of every key, revoked ones included, ordered by
// id, with the digests of its secrets (never a secret): the backup. Its
// deadline is Options.BulkTimeout (30 s); it is retried (it only reads).
func (c *Client) ExportKeys(ctx context.Context, req *tollgatev1.ExportKeysRequest) (*tollgatev1.ExportKeysResponse, error) {
	return c.keys.ExportKeys(ctx, req)
}

// ImportKeys imports 1..500 records (an export, or foreign keys by SHA-256
// digest) and returns one outcome per record; DryRun writes nothing. Its
// deadline is Options.BulkTimeout (30 s); it is retried only without
// Overwrite (idempotent then).
func (c *Client) ImportKeys(ctx context.Context, req *tollgatev1.ImportKeysRequest) (*tollgatev1.ImportKeysResponse, error) {
	return c.keys.ImportKeys(ctx, req)
}

// TailDecisions streams this replica's decisions: up to Backlog (0..1000)
// recent ones, oldest first, then, with Follow, each as it is taken, until
// Limit or ctx ends (cancel ctx to stop: the call is cancelled on the server
// too). Read with Recv until io.EOF. No deadline unless ctx has one; never
// retried; sends the management token.
func (c *Client) TailDecisions(ctx context.Context, req *tollgatev1.TailDecisionsRequest) (grpc.ServerStreamingClient[tollgatev1.TailDecisionsResponse], error) {
	return c.keys.TailDecisions(ctx, req)
}

// FollowEvents streams security events as they are stored (from StartTime,
// default the call's start), oldest first, with ListEvents' filters; it ends
// as TailDecisions does.
func (c *Client) FollowEvents(ctx context.Context, req *tollgatev1.FollowEventsRequest) (grpc.ServerStreamingClient[tollgatev1.FollowEventsResponse], error) {
	return c.keys.FollowEvents(ctx, req)
}

// ExportAll calls fn with every page of ExportKeys in turn, from
// req.PageToken (nil req or empty token: the first page) to the last. Each
// page is one ExportKeys call with its own deadline and retries, and carries
// the PepperFingerprintPrefix its records need on import. It stops at the
// first error of a call or of fn and returns it; req is not modified.
func (c *Client) ExportAll(ctx context.Context, req *tollgatev1.ExportKeysRequest, fn func(*tollgatev1.ExportKeysResponse) error) error {
	next := &tollgatev1.ExportKeysRequest{}
	if req != nil {
		next = proto.CloneOf(req)
	}
	for {
		page, err := c.ExportKeys(ctx, next)
		if err != nil {
			return err
		}
		if err := fn(page); err != nil {
			return err
		}
		if page.GetNextPageToken() == "" {
			return nil
		}
		next.PageToken = page.GetNextPageToken()
	}
}
