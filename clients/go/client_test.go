package tollgate_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	tollgate "github.com/tollgate/tollgate/clients/go"
	tollgatev1 "github.com/tollgate/tollgate/clients/go/gen/tollgate/v1"
)

func TestClientCallsEveryRPCWithTypedResults(t *testing.T) {
	srv := sharedServer(t)
	c := newClient(t, srv.url(), tollgate.Options{})
	ctx := context.Background()

	created := createKey(t, c, "acme-rpcs", "orders:read")
	id := created.GetKey().GetId()
	if !strings.HasPrefix(id, "key_") || !strings.HasPrefix(created.GetSecret(), "tg_") {
		t.Fatalf("CreateKey: id %q, secret prefix %q", id, created.GetSecret()[:3])
	}

	got, err := c.GetKey(ctx, &tollgatev1.GetKeyRequest{Id: id})
	if err != nil || got.GetKey().GetOwner() != "acme-rpcs" || got.GetKey().GetStatus() != tollgatev1.KeyStatus_KEY_STATUS_ACTIVE {
		t.Fatalf("GetKey: %v %v", got, err)
	}
	list, err := c.ListKeys(ctx, &tollgatev1.ListKeysRequest{Owner: "acme-rpcs"})
	if err != nil || len(list.GetKeys()) != 1 || list.GetKeys()[0].GetId() != id {
		t.Fatalf("ListKeys: %v %v", list, err)
	}
	upd, err := c.UpdateKey(ctx, &tollgatev1.UpdateKeyRequest{
		Id: id, Scopes: []string{"orders:read", "orders:write"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"scopes"}},
	})
	if err != nil || len(upd.GetKey().GetScopes()) != 2 {
		t.Fatalf("UpdateKey: %v %v", upd, err)
	}

	auth, err := c.Authorize(ctx, &tollgatev1.AuthorizeRequest{
		ApiKey: created.GetSecret(), Method: "GET", Path: "/v1/orders", ClientIp: "127.0.0.1",
	})
	if err != nil || !auth.GetAllowed() || auth.GetIdentity().GetKeyId() != id || auth.GetEndpoint() != "orders" {
		t.Fatalf("Authorize: %v %v", auth, err)
	}
	rl, err := c.CheckRateLimit(ctx, &tollgatev1.CheckRateLimitRequest{KeyId: id, Endpoint: "limited"})
	if err != nil || !rl.GetAllowed() || rl.GetResult().GetDeciding().GetName() != "per-key" {
		t.Fatalf("CheckRateLimit: %v %v", rl, err)
	}

	ev, err := c.RecordEvent(ctx, &tollgatev1.RecordEventRequest{Events: []*tollgatev1.Event{{
		Id: "go-client-test-1", CustomType: "app.login_failed", Subject: "203.0.113.7",
		SubjectKind: tollgatev1.SubjectKind_SUBJECT_KIND_IP, Severity: tollgatev1.Severity_SEVERITY_LOW,
	}}})
	if err != nil || len(ev.GetAcceptedIds()) != 1 {
		t.Fatalf("RecordEvent: %v %v", ev, err)
	}
	again, err := c.RecordEvent(ctx, &tollgatev1.RecordEventRequest{Events: []*tollgatev1.Event{{
		Id: "go-client-test-1", CustomType: "app.login_failed", Subject: "203.0.113.7",
		SubjectKind: tollgatev1.SubjectKind_SUBJECT_KIND_IP,
	}}})
	if err != nil || len(again.GetDuplicateIds()) != 1 {
		t.Fatalf("RecordEvent again (idempotent by id): %v %v", again, err)
	}
	events, err := c.ListEvents(ctx, &tollgatev1.ListEventsRequest{CustomType: "app.login_failed"})
	if err != nil || len(events.GetEvents()) != 1 {
		t.Fatalf("ListEvents: %v %v", events, err)
	}
	if _, err := c.ListAlerts(ctx, &tollgatev1.ListAlertsRequest{}); err != nil {
		t.Fatalf("ListAlerts: %v", err)
	}
	if _, err := c.ListBlocks(ctx, &tollgatev1.ListBlocksRequest{}); err != nil {
		t.Fatalf("ListBlocks: %v", err)
	}
	lifted, err := c.DeleteBlock(ctx, &tollgatev1.DeleteBlockRequest{SubjectKind: tollgatev1.SubjectKind_SUBJECT_KIND_IP, Subject: "203.0.113.7"})
	if err != nil || lifted.GetLifted() {
		t.Fatalf("DeleteBlock of no block: %v %v", lifted, err)
	}
	usage, err := c.GetUsage(ctx, &tollgatev1.GetUsageRequest{KeyId: id})
	if err != nil || len(usage.GetBuckets()) == 0 || usage.GetGranularity() != tollgatev1.UsageGranularity_USAGE_GRANULARITY_MINUTE {
		t.Fatalf("GetUsage: %v %v", usage, err)
	}

	// Self-rotation by secret, then rotation by id (management).
	rot, err := c.RotateKey(ctx, &tollgatev1.RotateKeyRequest{CurrentSecret: created.GetSecret(), GracePeriod: durationpb.New(0)})
	if err != nil || rot.GetSecret() == created.GetSecret() {
		t.Fatalf("RotateKey by secret: %v", err)
	}
	rememberSecret(rot.GetSecret())
	rot2, err := c.RotateKey(ctx, &tollgatev1.RotateKeyRequest{KeyId: id, GracePeriod: durationpb.New(0)})
	if err != nil {
		t.Fatalf("RotateKey by id: %v", err)
	}
	rememberSecret(rot2.GetSecret())

	rev, err := c.RevokeKey(ctx, &tollgatev1.RevokeKeyRequest{Id: id, Reason: "test"})
	if err != nil || rev.GetKey().GetStatus() != tollgatev1.KeyStatus_KEY_STATUS_REVOKED {
		t.Fatalf("RevokeKey: %v %v", rev, err)
	}

	// Errors keep their gRPC codes.
	if _, err := c.GetKey(ctx, &tollgatev1.GetKeyRequest{Id: "key_0000000000000000"}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetKey of an unknown id: %v, want NOT_FOUND", err)
	}
	_, err = c.GetKey(ctx, &tollgatev1.GetKeyRequest{Id: "not-a-key-id"})
	if fv := tollgate.FieldViolations(err); status.Code(err) != codes.InvalidArgument || len(fv) != 1 || fv[0].Field != "id" {
		t.Fatalf("GetKey of a malformed id: %v, violations %v, want INVALID_ARGUMENT naming id", err, fv)
	}
}

// every RPC of both services, by full method name.
func everyRPC() []string {
	var all []string
	for _, sd := range []*grpc.ServiceDesc{&tollgatev1.TollgateService_ServiceDesc, &tollgatev1.KeyService_ServiceDesc} {
		for _, m := range sd.Methods {
			all = append(all, "/"+sd.ServiceName+"/"+m.MethodName)
		}
		for _, m := range sd.Streams {
			all = append(all, "/"+sd.ServiceName+"/"+m.StreamName)
		}
	}
	return all
}

func TestClientHasAMethodForEveryRPC(t *testing.T) {
	ct := reflect.TypeFor[*tollgate.Client]()
	all := everyRPC()
	for _, want := range []string{tollgatev1.KeyService_ExportKeys_FullMethodName, tollgatev1.KeyService_ImportKeys_FullMethodName, tollgatev1.KeyService_TailDecisions_FullMethodName} {
		if !slices.Contains(all, want) {
			t.Fatalf("%s is not in the service descriptors", want)
		}
	}
	for _, full := range all {
		name := full[strings.LastIndex(full, "/")+1:]
		if _, ok := ct.MethodByName(name); !ok {
			t.Errorf("*tollgate.Client has no method %s", name)
		}
	}
}

func TestExportAllPagesAndImportThemBackUnchanged(t *testing.T) {
	c := newClient(t, sharedServer(t).url(), tollgate.Options{})
	ctx := context.Background()
	a := createKey(t, c, "acme-backup", "orders:read")
	b := createKey(t, c, "acme-backup", "orders:write")

	var records []*tollgatev1.KeyExport
	fingerprints := map[string]bool{}
	req := &tollgatev1.ExportKeysRequest{PageSize: 1}
	err := c.ExportAll(ctx, req, func(p *tollgatev1.ExportKeysResponse) error {
		if len(p.GetKeys()) > 1 {
			return fmt.Errorf("a page of %d keys, asked for 1", len(p.GetKeys()))
		}
		records = append(records, p.GetKeys()...)
		fingerprints[p.GetPepperFingerprintPrefix()] = true
		return nil
	})
	if err != nil || req.GetPageToken() != "" {
		t.Fatalf("ExportAll: %v (request token %q: the request was modified)", err, req.GetPageToken())
	}
	var ids []string
	for _, r := range records {
		ids = append(ids, r.GetKey().GetId())
	}
	if !slices.Contains(ids, a.GetKey().GetId()) || !slices.Contains(ids, b.GetKey().GetId()) || !slices.IsSorted(ids) {
		t.Fatalf("exported ids %v: want both new keys, ordered by id", ids)
	}
	if len(fingerprints) != 1 {
		t.Fatalf("pepper fingerprints %v, want one", fingerprints)
	}
	var fingerprint string
	for f := range fingerprints {
		fingerprint = f
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}$`).MatchString(fingerprint) {
		t.Fatalf("fingerprint %q", fingerprint)
	}
	mine := records[slices.Index(ids, a.GetKey().GetId())]
	if mine.GetKey().GetOwner() != "acme-backup" || len(mine.GetSecretDigest()) != 43 {
		t.Fatalf("exported record %v", mine)
	}

	// Restoring into the same server changes nothing.
	restored, err := c.ImportKeys(ctx, &tollgatev1.ImportKeysRequest{Keys: records, PepperFingerprintPrefix: fingerprint})
	if err != nil || len(restored.GetResults()) != len(records) {
		t.Fatalf("ImportKeys: %v %v", restored, err)
	}
	for i, r := range restored.GetResults() {
		if r.GetIndex() != uint32(i) || r.GetKeyId() != ids[i] || r.GetOutcome() != tollgatev1.ImportOutcome_IMPORT_OUTCOME_UNCHANGED {
			t.Errorf("result %d: %v, want %s UNCHANGED", i, r, ids[i])
		}
	}

	// A modified record is a conflict; a dry run writes nothing.
	changed := proto.CloneOf(mine)
	changed.Key.Owner = "someone-else"
	dry, err := c.ImportKeys(ctx, &tollgatev1.ImportKeysRequest{Keys: []*tollgatev1.KeyExport{changed}, DryRun: true, PepperFingerprintPrefix: fingerprint})
	if err != nil || len(dry.GetResults()) != 1 || dry.GetResults()[0].GetOutcome() != tollgatev1.ImportOutcome_IMPORT_OUTCOME_CONFLICT ||
		!strings.Contains(dry.GetResults()[0].GetDetail(), "owner") {
		t.Fatalf("dry run of a changed record: %v %v, want CONFLICT naming owner", dry, err)
	}
	if got, err := c.GetKey(ctx, &tollgatev1.GetKeyRequest{Id: a.GetKey().GetId()}); err != nil || got.GetKey().GetOwner() != "acme-backup" {
		t.Fatalf("after the dry run: %v %v", got, err)
	}

	// An error of fn stops the iteration and is returned.
	stop := errors.New("stop")
	calls := 0
	if err := c.ExportAll(ctx, req, func(*tollgatev1.ExportKeysResponse) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("ExportAll with fn failing: %v after %d pages, want stop after 1", err, calls)
	}
}

func TestRevokedKeyIsRefusedAtOnceWithoutTheAllowCache(t *testing.T) {
	c := newClient(t, sharedServer(t).url(), tollgate.Options{})
	ctx := context.Background()
	k := createKey(t, c, "acme-revoke")
	req := &tollgatev1.AuthorizeRequest{ApiKey: k.GetSecret(), Method: "GET", Path: "/v1/anything"}
	if resp, err := c.Authorize(ctx, req); err != nil || !resp.GetAllowed() {
		t.Fatalf("before revocation: %v %v", resp, err)
	}
	if _, err := c.RevokeKey(ctx, &tollgatev1.RevokeKeyRequest{Id: k.GetKey().GetId()}); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Authorize(ctx, req)
	if err != nil || resp.GetAllowed() || resp.GetReason() != tollgatev1.Reason_REASON_REVOKED_KEY || resp.GetHttpStatus() != 401 {
		t.Fatalf("after revocation: %v %v, want REASON_REVOKED_KEY 401", resp, err)
	}
}

func TestAllowCacheKeepsARevokedKeyAtMostItsClampedTTL(t *testing.T) {
	srv := sharedServer(t)
	// Asking for an hour gets the server's revocation bound, 5 s.
	if ttl := newClient(t, srv.url(), tollgate.Options{AllowCache: tollgate.AllowCacheOptions{TTL: time.Hour}}).AllowCacheTTL(); ttl != tollgate.MaxAllowCacheTTL {
		t.Fatalf("TTL of an hour became %v, want the clamp %v", ttl, tollgate.MaxAllowCacheTTL)
	}
	if ttl := newClient(t, srv.url(), tollgate.Options{}).AllowCacheTTL(); ttl != 0 {
		t.Fatalf("the allow-cache is on by default (TTL %v)", ttl)
	}

	var n attempts
	const ttl = 600 * time.Millisecond
	c := newClient(t, srv.url(), tollgate.Options{
		AllowCache:  tollgate.AllowCacheOptions{TTL: ttl},
		DialOptions: []grpc.DialOption{n.dialOption()},
	})
	ctx := context.Background()
	k := createKey(t, c, "acme-cache")
	req := &tollgatev1.AuthorizeRequest{ApiKey: k.GetSecret(), Method: "GET", Path: "/v1/anything", ClientIp: "127.0.0.1"}
	const authorize = tollgatev1.TollgateService_Authorize_FullMethodName
	if resp, err := c.Authorize(ctx, req); err != nil || !resp.GetAllowed() {
		t.Fatalf("first Authorize: %v %v", resp, err)
	}
	if resp, err := c.Authorize(ctx, req); err != nil || !resp.GetAllowed() || n.get(authorize) != 1 {
		t.Fatalf("second Authorize: %v %v, %d calls sent, want 1 (from the cache)", resp, err, n.get(authorize))
	}
	// A charging call is never answered from the cache.
	limited := &tollgatev1.AuthorizeRequest{ApiKey: k.GetSecret(), Method: "GET", Path: "/v1/anything", ClientIp: "127.0.0.1", ApplyLimits: true}
	if _, err := c.Authorize(ctx, limited); err != nil || n.get(authorize) != 2 {
		t.Fatalf("Authorize with apply_limits: %v, %d calls sent, want 2", err, n.get(authorize))
	}

	revokedAt := time.Now()
	if _, err := c.RevokeKey(ctx, &tollgatev1.RevokeKeyRequest{Id: k.GetKey().GetId()}); err != nil {
		t.Fatal(err)
	}
	// Within the TTL the cache still allows the revoked key (the documented bound)…
	if resp, err := c.Authorize(ctx, req); err != nil || !resp.GetAllowed() {
		t.Fatalf("within the TTL: %v %v, want the cached allow", resp, err)
	}
	// …the server itself refuses it at once…
	if resp, err := c.Authorize(ctx, limited); err != nil || resp.GetReason() != tollgatev1.Reason_REASON_REVOKED_KEY {
		t.Fatalf("uncached call after revocation: %v %v", resp, err)
	}
	// …and once the TTL has passed, so does the cached path.
	for {
		resp, err := c.Authorize(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if !resp.GetAllowed() {
			if resp.GetReason() != tollgatev1.Reason_REASON_REVOKED_KEY {
				t.Fatalf("reason %v, want REASON_REVOKED_KEY", resp.GetReason())
			}
			if since := time.Since(revokedAt); since > ttl+500*time.Millisecond {
				t.Fatalf("refused %v after revocation, want within the TTL %v", since, ttl)
			}
			break
		}
		if time.Since(revokedAt) > ttl+time.Second {
			t.Fatalf("still allowed %v after revocation, TTL %v", time.Since(revokedAt), ttl)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Denials are never cached.
	before := n.get(authorize)
	c.Authorize(ctx, req)
	if n.get(authorize) != before+1 {
		t.Fatal("a denial was answered from the cache")
	}
}

// firstRecv is the error of opening a stream, else of its first Recv.
func firstRecv[T any](s grpc.ServerStreamingClient[T], err error) error {
	if err != nil {
		return err
	}
	_, err = s.Recv()
	return err
}

func TestRetriesOnlyCallsThatAreSafeToRepeat(t *testing.T) {
	var n attempts
	// Nothing listens: every attempt fails UNAVAILABLE at once.
	c := newClient(t, closedPort(t), tollgate.Options{
		Breaker:     tollgate.BreakerOptions{Disabled: true},
		Timeout:     2 * time.Second, // room for every backoff step
		DialOptions: []grpc.DialOption{n.dialOption(), n.streamDialOption()},
	})
	ctx := context.Background()
	calls := []struct {
		name   string
		method string
		call   func() error
		want   int
	}{
		{"Authorize without apply_limits", tollgatev1.TollgateService_Authorize_FullMethodName, func() error {
			_, err := c.Authorize(ctx, &tollgatev1.AuthorizeRequest{ApiKey: "x", Method: "GET", Path: "/"})
			return err
		}, 3},
		{"GetKey", tollgatev1.KeyService_GetKey_FullMethodName, func() error {
			_, err := c.GetKey(ctx, &tollgatev1.GetKeyRequest{Id: "key_x"})
			return err
		}, 3},
		{"RevokeKey", tollgatev1.KeyService_RevokeKey_FullMethodName, func() error {
			_, err := c.RevokeKey(ctx, &tollgatev1.RevokeKeyRequest{Id: "key_x"})
			return err
		}, 3},
		{"RecordEvent", tollgatev1.TollgateService_RecordEvent_FullMethodName, func() error {
			_, err := c.RecordEvent(ctx, &tollgatev1.RecordEventRequest{})
			return err
		}, 3},
		{"ReportUsage", tollgatev1.TollgateService_ReportUsage_FullMethodName, func() error {
			_, err := c.ReportUsage(ctx, &tollgatev1.ReportUsageRequest{Id: "resp-1", KeyId: "key_x", Cost: 1})
			return err
		}, 3},
		{"Authorize with apply_limits", tollgatev1.TollgateService_Authorize_FullMethodName, func() error {
			_, err := c.Authorize(ctx, &tollgatev1.AuthorizeRequest{ApiKey: "x", Method: "GET", Path: "/", ApplyLimits: true})
			return err
		}, 1},
		{"CheckRateLimit", tollgatev1.TollgateService_CheckRateLimit_FullMethodName, func() error {
			_, err := c.CheckRateLimit(ctx, &tollgatev1.CheckRateLimitRequest{KeyId: "key_x"})
			return err
		}, 1},
		{"CreateKey", tollgatev1.KeyService_CreateKey_FullMethodName, func() error {
			_, err := c.CreateKey(ctx, &tollgatev1.CreateKeyRequest{Owner: "x"})
			return err
		}, 1},
		{"RotateKey", tollgatev1.TollgateService_RotateKey_FullMethodName, func() error {
			_, err := c.RotateKey(ctx, &tollgatev1.RotateKeyRequest{KeyId: "key_x"})
			return err
		}, 1},
		{"UpdateKey", tollgatev1.KeyService_UpdateKey_FullMethodName, func() error {
			_, err := c.UpdateKey(ctx, &tollgatev1.UpdateKeyRequest{Id: "key_x"})
			return err
		}, 1},
		{"DeleteBlock", tollgatev1.KeyService_DeleteBlock_FullMethodName, func() error {
			_, err := c.DeleteBlock(ctx, &tollgatev1.DeleteBlockRequest{Subject: "x"})
			return err
		}, 1},
		{"SetLimitOverride", tollgatev1.KeyService_SetLimitOverride_FullMethodName, func() error {
			_, err := c.SetLimitOverride(ctx, &tollgatev1.SetLimitOverrideRequest{})
			return err
		}, 1},
		{"DeleteLimitOverride", tollgatev1.KeyService_DeleteLimitOverride_FullMethodName, func() error {
			_, err := c.DeleteLimitOverride(ctx, &tollgatev1.DeleteLimitOverrideRequest{})
			return err
		}, 1},
		{"ListLimitOverrides", tollgatev1.KeyService_ListLimitOverrides_FullMethodName, func() error {
			_, err := c.ListLimitOverrides(ctx, &tollgatev1.ListLimitOverridesRequest{})
			return err
		}, 3},
		{"ListKeys", tollgatev1.KeyService_ListKeys_FullMethodName, func() error {
			_, err := c.ListKeys(ctx, &tollgatev1.ListKeysRequest{})
			return err
		}, 3},
		{"ListBlocks", tollgatev1.KeyService_ListBlocks_FullMethodName, func() error {
			_, err := c.ListBlocks(ctx, &tollgatev1.ListBlocksRequest{})
			return err
		}, 3},
		{"ListEvents", tollgatev1.KeyService_ListEvents_FullMethodName, func() error {
			_, err := c.ListEvents(ctx, &tollgatev1.ListEventsRequest{})
			return err
		}, 3},
		{"ListAlerts", tollgatev1.KeyService_ListAlerts_FullMethodName, func() error {
			_, err := c.ListAlerts(ctx, &tollgatev1.ListAlertsRequest{})
			return err
		}, 3},
		{"GetUsage", tollgatev1.KeyService_GetUsage_FullMethodName, func() error {
			_, err := c.GetUsage(ctx, &tollgatev1.GetUsageRequest{KeyId: "key_x"})
			return err
		}, 3},
		{"ExportKeys", tollgatev1.KeyService_ExportKeys_FullMethodName, func() error {
			_, err := c.ExportKeys(ctx, &tollgatev1.ExportKeysRequest{})
			return err
		}, 3},
		{"ImportKeys", tollgatev1.KeyService_ImportKeys_FullMethodName, func() error {
			_, err := c.ImportKeys(ctx, &tollgatev1.ImportKeysRequest{Keys: []*tollgatev1.KeyExport{{}}})
			return err
		}, 3},
		{"ImportKeys dry run", tollgatev1.KeyService_ImportKeys_FullMethodName, func() error {
			_, err := c.ImportKeys(ctx, &tollgatev1.ImportKeysRequest{Keys: []*tollgatev1.KeyExport{{}}, DryRun: true})
			return err
		}, 3},
		{"ImportKeys with overwrite", tollgatev1.KeyService_ImportKeys_FullMethodName, func() error {
			_, err := c.ImportKeys(ctx, &tollgatev1.ImportKeysRequest{Keys: []*tollgatev1.KeyExport{{}}, Overwrite: true})
			return err
		}, 1},
		{"ImportKeys with overwrite, dry run", tollgatev1.KeyService_ImportKeys_FullMethodName, func() error {
			_, err := c.ImportKeys(ctx, &tollgatev1.ImportKeysRequest{Keys: []*tollgatev1.KeyExport{{}}, Overwrite: true, DryRun: true})
			return err
		}, 1},
		// Streams are never retried: a new stream would repeat or miss lines.
		{"TailDecisions", tollgatev1.KeyService_TailDecisions_FullMethodName, func() error {
			return firstRecv(c.TailDecisions(ctx, &tollgatev1.TailDecisionsRequest{Follow: true}))
		}, 1},
		{"FollowEvents", tollgatev1.KeyService_FollowEvents_FullMethodName, func() error {
			return firstRecv(c.FollowEvents(ctx, &tollgatev1.FollowEventsRequest{}))
		}, 1},
	}
	covered := map[string]bool{}
	for _, tc := range calls {
		covered[tc.method] = true
	}
	for _, m := range everyRPC() {
		if !covered[m] {
			t.Errorf("%s is not in this table of retry rules", m)
		}
	}
	for _, tc := range calls {
		n.reset()
		err := tc.call()
		if status.Code(err) != codes.Unavailable || !tollgate.Unreachable(err) {
			t.Errorf("%s: %v, want UNAVAILABLE", tc.name, err)
		}
		if got := n.get(tc.method); got != tc.want {
			t.Errorf("%s: %d attempts, want %d", tc.name, got, tc.want)
		}
	}
}

func TestRetriesNeverGoPastTheDeadline(t *testing.T) {
	var n attempts
	c := newClient(t, closedPort(t), tollgate.Options{
		Breaker:     tollgate.BreakerOptions{Disabled: true},
		Timeout:     30 * time.Millisecond,
		Retry:       tollgate.RetryOptions{MaxRetries: 50, BaseDelay: 20 * time.Millisecond, MaxDelay: 20 * time.Millisecond},
		DialOptions: []grpc.DialOption{n.dialOption()},
	})
	start := time.Now()
	_, err := c.Authorize(context.Background(), &tollgatev1.AuthorizeRequest{ApiKey: "x", Method: "GET", Path: "/"})
	if !tollgate.Unreachable(err) {
		t.Fatalf("err %v, want unreachable", err)
	}
	if el := time.Since(start); el > 300*time.Millisecond { // 50 retries of 20 ms would be 1 s
		t.Fatalf("took %v with a 30 ms deadline", el)
	}
	if got := n.get(tollgatev1.TollgateService_Authorize_FullMethodName); got < 1 || got > 10 {
		t.Fatalf("%d attempts within 30 ms", got)
	}
}

func TestASafeCallIsRetriedAcrossASidecarRestart(t *testing.T) {
	// A real server stops; GetKey is retried (and gives up UNAVAILABLE)
	// while CreateKey is tried once; once the server is back, calls work.
	srv := startServer(t, 0)
	var n attempts
	c := newClient(t, srv.url(), tollgate.Options{
		Breaker:     tollgate.BreakerOptions{Disabled: true},
		DialOptions: []grpc.DialOption{n.dialOption()},
	})
	ctx := context.Background()
	k := createKey(t, c, "acme-restart")
	srv.stop()
	n.reset()
	if _, err := c.GetKey(ctx, &tollgatev1.GetKeyRequest{Id: k.GetKey().GetId()}); !tollgate.Unreachable(err) {
		t.Fatalf("GetKey with the server down: %v", err)
	}
	if _, err := c.CreateKey(ctx, &tollgatev1.CreateKeyRequest{Owner: "x"}); !tollgate.Unreachable(err) {
		t.Fatalf("CreateKey with the server down: %v", err)
	}
	if g, cr := n.get(tollgatev1.KeyService_GetKey_FullMethodName), n.get(tollgatev1.KeyService_CreateKey_FullMethodName); g != 3 || cr != 1 {
		t.Fatalf("attempts with the server down: GetKey %d (want 3), CreateKey %d (want 1)", g, cr)
	}
	startServer(t, srv.port)
	waitFor(t, 5*time.Second, func() bool {
		_, err := c.ListKeys(ctx, &tollgatev1.ListKeysRequest{})
		return err == nil
	})
}

func TestBreakerOpensAfterFiveFailuresAndClosesAfterATrial(t *testing.T) {
	srv := startServer(t, 0)
	var n attempts
	c := newClient(t, srv.url(), tollgate.Options{
		Retry:       tollgate.RetryOptions{MaxRetries: -1},
		DialOptions: []grpc.DialOption{n.dialOption()},
	})
	ctx := context.Background()
	check := func() error {
		_, err := c.Authorize(ctx, &tollgatev1.AuthorizeRequest{ApiKey: "tg_live_nope", Method: "GET", Path: "/"})
		return err
	}
	if err := check(); err != nil {
		t.Fatalf("with the server up: %v", err)
	}
	srv.stop()
	const method = tollgatev1.TollgateService_Authorize_FullMethodName
	n.reset()
	for i := range 5 {
		if err := check(); !tollgate.Unreachable(err) || errors.Is(err, tollgate.ErrCircuitOpen) {
			t.Fatalf("failure %d: %v, want UNAVAILABLE from the network", i+1, err)
		}
	}
	start := time.Now()
	err := check()
	if !errors.Is(err, tollgate.ErrCircuitOpen) || status.Code(err) != codes.Unavailable {
		t.Fatalf("6th call: %v, want ErrCircuitOpen (UNAVAILABLE)", err)
	}
	if el := time.Since(start); el > 100*time.Millisecond || n.get(method) != 5 {
		t.Fatalf("open breaker: took %v and sent %d attempts in all, want fast and 5", el, n.get(method))
	}
	startServer(t, srv.port)
	// Half-open after 1 s: one trial call; success closes the breaker.
	waitFor(t, 6*time.Second, func() bool { return check() == nil })
	for range 3 {
		if err := check(); err != nil {
			t.Fatalf("after closing: %v", err)
		}
	}
}

func TestManagementTokenFromTheEnvironmentFile(t *testing.T) {
	const token = "go-client-test-management-token-0123456789"
	rememberSecret(token)
	srv := startServer(t, 0, "TOLLGATE_MANAGEMENT_TOKEN="+token)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TOLLGATE_MANAGEMENT_TOKEN_FILE", file)
	t.Setenv("TOLLGATE_SERVER", srv.url())
	c, err := tollgate.NewClient(tollgate.Options{Logger: testLogger()}) // everything from the environment
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	k := createKey(t, c, "acme-token")
	// Self-rotation by secret needs no token.
	os.Unsetenv("TOLLGATE_MANAGEMENT_TOKEN_FILE")
	anon := newClient(t, srv.url(), tollgate.Options{})
	if _, err := anon.GetKey(context.Background(), &tollgatev1.GetKeyRequest{Id: k.GetKey().GetId()}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("GetKey without a token: %v, want UNAUTHENTICATED", err)
	} else if strings.Contains(err.Error(), token) {
		t.Fatal("the error names the token")
	}
	rot, err := anon.RotateKey(context.Background(), &tollgatev1.RotateKeyRequest{CurrentSecret: k.GetSecret()})
	if err != nil {
		t.Fatalf("self-rotation without a token: %v", err)
	}
	rememberSecret(rot.GetSecret())
	// An explicit option overrides the environment.
	t.Setenv("TOLLGATE_MANAGEMENT_TOKEN", "wrong")
	explicit := newClient(t, srv.url(), tollgate.Options{ManagementToken: token})
	if _, err := explicit.GetKey(context.Background(), &tollgatev1.GetKeyRequest{Id: k.GetKey().GetId()}); err != nil {
		t.Fatalf("explicit token: %v", err)
	}
}

// waitFor polls cond every 50 ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestStreamsTheRecentDecisionsAndEndsAfterTheBacklog(t *testing.T) {
	c := newClient(t, sharedServer(t).url(), tollgate.Options{})
	ctx := context.Background()
	if _, err := c.Authorize(ctx, &tollgatev1.AuthorizeRequest{Method: "GET", Path: "/go-stream"}); err != nil {
		t.Fatal(err)
	}
	s, err := c.TailDecisions(ctx, &tollgatev1.TailDecisionsRequest{Backlog: 1, DeniedOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	line, err := s.Recv()
	if err != nil || line.GetReason() != "MISSING_KEY" || line.GetAllowed() {
		t.Fatalf("first line: %v %v", line, err)
	}
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the backlog, without Follow: %v, want io.EOF", err)
	}
}
