package tollgate

import (
	"context"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tollgatev1 "github.com/tollgate/tollgate/clients/go/gen/tollgate/v1"
)

// safeToRepeat lists the RPCs whose repetition cannot change the outcome:
// reads (ExportKeys included), RecordEvent (idempotent by event id) and
// RevokeKey (revoking twice is revoking once). Authorize and ImportKeys
// depend on a request field; they are decided per request in Retryable.
var safeToRepeat = map[string]bool{
	tollgatev1.TollgateService_RecordEvent_FullMethodName:   true,
	tollgatev1.KeyService_GetKey_FullMethodName:             true,
	tollgatev1.KeyService_ListKeys_FullMethodName:           true,
	tollgatev1.KeyService_ListBlocks_FullMethodName:         true,
	tollgatev1.KeyService_ListEvents_FullMethodName:         true,
	tollgatev1.KeyService_ListAlerts_FullMethodName:         true,
	tollgatev1.KeyService_ListLimitOverrides_FullMethodName: true,
	tollgatev1.KeyService_GetUsage_FullMethodName:           true,
	tollgatev1.KeyService_ExportKeys_FullMethodName:         true,
	tollgatev1.KeyService_RevokeKey_FullMethodName:          true,
	// Idempotent by its id: a repeat of a report already charged charges nothing.
	tollgatev1.TollgateService_ReportUsage_FullMethodName: true,
}

// Retryable reports whether a call of fullMethod with req may be repeated
// after UNAVAILABLE. Never retried: CheckRateLimit and Authorize with
// apply_limits (they charge limits and carry no idempotency key), CreateKey,
// RotateKey, UpdateKey and DeleteBlock — a repeat could act twice when the
// first attempt reached the server but its answer was lost — and ImportKeys
// with overwrite, dry run or not (a repeat could replace a change made in
// between). ImportKeys without overwrite is idempotent, dry run or not: a
// record the lost attempt wrote reads UNCHANGED the second time.
func Retryable(fullMethod string, req any) bool {
	switch fullMethod {
	case tollgatev1.TollgateService_Authorize_FullMethodName:
		a, ok := req.(*tollgatev1.AuthorizeRequest)
		return ok && !a.GetApplyLimits()
	case tollgatev1.KeyService_ImportKeys_FullMethodName:
		i, ok := req.(*tollgatev1.ImportKeysRequest)
		return ok && !i.GetOverwrite()
	}
	return safeToRepeat[fullMethod]
}

// retryInterceptor repeats safe calls on UNAVAILABLE with exponential backoff
// and full jitter. It never waits past the context's deadline: when the next
// wait would end after it, the last error is returned at once.
func retryInterceptor(ro RetryOptions) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if ro.MaxRetries < 0 || !Retryable(method, req) {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		for attempt := 0; ; attempt++ {
			err := invoker(ctx, method, req, reply, cc, opts...)
			if err == nil || status.Code(err) != codes.Unavailable || attempt >= ro.MaxRetries || ctx.Err() != nil {
				return err
			}
			wait := retryWait(ro, attempt)
			if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= wait {
				return err
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return err
			case <-t.C:
			}
		}
	}
}

// retryWait is the full-jitter wait before retry attempt+1: uniform in
// [0, min(MaxDelay, BaseDelay·2^attempt)).
func retryWait(ro RetryOptions, attempt int) time.Duration {
	step := ro.MaxDelay
	if attempt < 30 {
		step = min(ro.MaxDelay, ro.BaseDelay<<attempt)
	}
	if step <= 0 {
		return 0
	}
	return rand.N(step)
}
