"""The optional allow-cache: off by default, allowed decisions only, TTL clamped to 5 s."""

from __future__ import annotations

import logging
import time

import pytest

from tests.conftest import new_key
from tests.tollgate_server import TollgateServer
from tollgate import AllowCachePolicy, TollgateClient, v1
from tollgate.allow_cache import AllowCache


def _ask(tollgate: TollgateClient, secret: str) -> v1.AuthorizeResponse:
    return tollgate.authorize(api_key=secret, method="GET", path="/v1/orders")


def test_without_the_cache_a_revoked_key_is_refused_at_once(client: TollgateClient) -> None:
    assert client.allow_cache is None  # off by default
    created = new_key(client)
    assert _ask(client, created.secret).allowed
    client.revoke_key(id=created.key.id)
    decision = _ask(client, created.secret)
    assert not decision.allowed and decision.reason == v1.REASON_REVOKED_KEY


def test_with_the_cache_a_revoked_key_is_refused_within_the_ttl(server: TollgateServer) -> None:
    with TollgateClient(server.url, allow_cache=AllowCachePolicy(ttl=0.5)) as tollgate:
        created = new_key(tollgate)
        first = _ask(tollgate, created.secret)
        assert first.allowed
        tollgate.revoke_key(id=created.key.id)
        cached = _ask(tollgate, created.secret)
        assert cached.allowed and cached.decision_id == first.decision_id  # from the cache
        time.sleep(0.6)
        decision = _ask(tollgate, created.secret)
        assert not decision.allowed and decision.reason == v1.REASON_REVOKED_KEY


def test_the_cache_skips_apply_limits_and_denials(server: TollgateServer) -> None:
    with TollgateClient(server.url, allow_cache=True) as tollgate:
        created = new_key(tollgate)
        limited = {"api_key": created.secret, "path": "/v1/limited", "apply_limits": True}
        first = tollgate.authorize(**limited)
        second = tollgate.authorize(**limited)
        assert first.decision_id != second.decision_id  # both reached Tollgate (and charged)
        third = tollgate.authorize(**limited)
        assert not third.allowed and third.reason == v1.REASON_RATE_LIMITED
        assert not tollgate.authorize(api_key="tg_live_unknown", path="/v1/orders").allowed
        assert len(tollgate.allow_cache) == 0


def test_the_ttl_is_clamped_to_the_revocation_bound(caplog: pytest.LogCaptureFixture) -> None:
    assert AllowCache().ttl == 5.0
    with caplog.at_level(logging.WARNING, logger="tollgate"):
        assert AllowCache(AllowCachePolicy(ttl=60)).ttl == 5.0
    assert "clamped" in caplog.text
    assert AllowCache(AllowCachePolicy(ttl=1.5)).ttl == 1.5


def test_the_cache_is_bounded_and_keyed_by_digest_never_the_raw_key() -> None:
    now = [0.0]
    cache = AllowCache(AllowCachePolicy(max_entries=2, ttl=5), timer=lambda: now[0])
    allowed = v1.AuthorizeResponse(allowed=True, http_status=200, decision_id="d")
    secrets = [f"tg_live_{i}aaaaaaaaaaaaaaaaaaaaaaaaaaaaa" for i in range(3)]
    for s in secrets:
        cache.put(v1.AuthorizeRequest(api_key=s, path="/x"), allowed)
    assert len(cache) == 2  # least recently used evicted
    for key in cache._keys():
        assert len(key) == 32  # a SHA-256 digest
        assert all(s.encode() not in key for s in secrets)
    hit = cache.get(v1.AuthorizeRequest(api_key=secrets[2], path="/x"))
    assert hit is not None and hit.allowed
    assert cache.get(v1.AuthorizeRequest(api_key=secrets[2], path="/y")) is None  # other path
    scoped = v1.AuthorizeRequest(api_key=secrets[2], path="/x", required_scopes=["a"])
    assert cache.get(scoped) is None  # other scopes
    from_header = v1.AuthorizeRequest(headers={"X-Api-Key": secrets[2]}, path="/x")
    assert cache.get(from_header) is not None  # the key from headers is the same key
    now[0] = 5.01
    assert cache.get(v1.AuthorizeRequest(api_key=secrets[2], path="/x")) is None  # expired
    cache.put(
        v1.AuthorizeRequest(api_key=secrets[0]),
        v1.AuthorizeResponse(allowed=True, decided_locally=True),
    )
    assert len(cache) == 0  # a degraded fail-open decision is never cached
