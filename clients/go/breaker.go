package tollgate

import (
	"context"
	"errors"
	"log/slog"

	"github.com/sony/gobreaker/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrCircuitOpen is returned, without any network call, while the client's
// circuit breaker is open (or half-open with its one trial call in flight).
// It is an UNAVAILABLE gRPC status, so status.Code(err) == codes.Unavailable
// and [Unreachable] is true; errors.Is(err, ErrCircuitOpen) tells it apart.
var ErrCircuitOpen = status.Error(codes.Unavailable, "tollgate: circuit breaker open: failing fast")

// Unreachable reports whether err means the sidecar could not answer:
// UNAVAILABLE (including [ErrCircuitOpen]) or a deadline exceeded. These are
// the errors a fail mode applies to; any other error is an answer.
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// newBreaker builds the client's breaker on sony/gobreaker: open after
// Failures consecutive Unreachable calls, half-open after OpenTimeout with a
// single trial call. A call its caller cancelled is excluded from the counts.
func newBreaker(bo BreakerOptions, log *slog.Logger) *gobreaker.CircuitBreaker[struct{}] {
	return gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "tollgate",
		MaxRequests: 1,
		Timeout:     bo.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= uint32(bo.Failures)
		},
		IsSuccessful: func(err error) bool { return !Unreachable(err) },
		IsExcluded: func(err error) bool {
			return errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			log.Warn("tollgate: circuit breaker state changed", "from", from.String(), "to", to.String())
		},
	})
}

// breakerInterceptor runs every call (with its retries) through the breaker.
func breakerInterceptor(cb *gobreaker.CircuitBreaker[struct{}]) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		_, err := cb.Execute(func() (struct{}, error) {
			return struct{}{}, invoker(ctx, method, req, reply, cc, opts...)
		})
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			return ErrCircuitOpen
		}
		return err
	}
}
