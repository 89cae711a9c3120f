package tollgate

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"google.golang.org/protobuf/proto"

	tollgatev1 "github.com/tollgate/tollgate/clients/go/gen/tollgate/v1"
)

// allowCache keeps allowed, non-charging Authorize decisions for a bounded
// time (at most MaxAllowCacheTTL) in a bounded LRU. Entries are keyed by a
// SHA-256 digest, so the cache never holds a raw API key.
type allowCache struct {
	lru *expirable.LRU[[sha256.Size]byte, *tollgatev1.AuthorizeResponse]
}

func newAllowCache(ttl time.Duration, size int) *allowCache {
	if ttl <= 0 {
		return nil
	}
	return &allowCache{lru: expirable.NewLRU[[sha256.Size]byte, *tollgatev1.AuthorizeResponse](size, nil, ttl)}
}

// cacheable reports whether req may be answered from the cache at all: only
// a decision that charges nothing can be reused.
func cacheable(req *tollgatev1.AuthorizeRequest) bool {
	return !req.GetApplyLimits()
}

// get returns a copy of a cached decision for req, or nil.
func (c *allowCache) get(k [sha256.Size]byte) *tollgatev1.AuthorizeResponse {
	if v, ok := c.lru.Get(k); ok {
		return proto.CloneOf(v)
	}
	return nil
}

// put stores resp if it is an allowed decision taken by the store (a local,
// fail-open decision is never reused).
func (c *allowCache) put(k [sha256.Size]byte, resp *tollgatev1.AuthorizeResponse) {
	if resp.GetAllowed() && !resp.GetDecidedLocally() {
		c.lru.Add(k, proto.CloneOf(resp))
	}
}

// cacheKey digests what an Authorize decision without limits depends on: the
// key (api_key, else the x-api-key header, as the server reads it), method,
// path, endpoint, client IP and the required scopes (order-insensitive). Each
// part is length-prefixed so no two inputs share a digest input.
func cacheKey(req *tollgatev1.AuthorizeRequest) [sha256.Size]byte {
	key := req.GetApiKey()
	if key == "" {
		for name, v := range req.GetHeaders() {
			if strings.EqualFold(name, "x-api-key") {
				key = v
				break
			}
		}
	}
	scopes := slices.Clone(req.GetRequiredScopes())
	slices.Sort(scopes)
	h := sha256.New()
	var n [8]byte
	write := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	write(key)
	write(req.GetMethod())
	write(req.GetPath())
	write(req.GetEndpoint())
	write(req.GetClientIp())
	for _, s := range scopes {
		write(s)
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}
