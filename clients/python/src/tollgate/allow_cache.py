"""The optional allow-cache: recent ALLOWED Authorize decisions, reused for a short time.

Off by default. Only decisions that were allowed, made WITHOUT `apply_limits` (those
charge limits and must reach Tollgate every time) and not `decided_locally` (a degraded
fail-open decision) are stored. Entries are keyed by a SHA-256 of (key, method, path,
endpoint, client IP, scopes) — the raw key is never kept — and live at most `ttl`
seconds, clamped to 5 s: the server's documented revocation bound (its own key cache,
TOLLGATE_CACHE_TTL_MS, defaults to 5 000 ms). So a key revoked now may still be
accepted from this cache for up to `ttl`; without the cache it is refused at once.

Bounded (default 10 000 entries; cachetools' TTLCache evicts expired entries first, then
the least recently used). Guarded by a lock: the sync client is used from many threads.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TTLCache

from tollgate._gen.tollgate.v1.tollgate_service_pb2 import AuthorizeRequest, AuthorizeResponse

log = logging.getLogger("tollgate")

MAX_TTL = 5.0
"""Seconds: the longest any allow-cache entry lives (the server's revocation bound)."""


@dataclass(frozen=True, slots=True)
class AllowCachePolicy:
    """Size and lifetime of the allow-cache.

    Attributes:
        max_entries: bound on cached decisions, LRU beyond it (default 10 000).
        ttl: seconds an allowed decision is reused, clamped to at most 5.0 (default 5.0).
    """

    max_entries: int = 10_000
    ttl: float = MAX_TTL

    def __post_init__(self) -> None:
        if self.max_entries < 1:
            raise ValueError("AllowCachePolicy.max_entries must be at least 1")
        if self.ttl <= 0:
            raise ValueError("AllowCachePolicy.ttl must be positive")


def _api_key(req: AuthorizeRequest) -> str:
    if req.api_key:
        return req.api_key
    for name, value in req.headers.items():
        if name.lower() == "x-api-key":
            return value
    return ""


def cache_key(req: AuthorizeRequest) -> bytes | None:
    """SHA-256 over the decision's inputs (None if there is no key to cache for)."""
    key = _api_key(req)
    if not key:
        return None
    h = hashlib.sha256()
    parts = [key, req.method.upper(), req.path, req.endpoint, req.client_ip]
    parts += sorted(req.required_scopes)
    for part in parts:
        data = part.encode()
        h.update(len(data).to_bytes(4, "big"))
        h.update(data)
    return h.digest()


class AllowCache:
    """See the module docstring."""

    def __init__(
        self, policy: AllowCachePolicy | None = None, timer: Callable[[], float] = time.monotonic
    ) -> None:
        policy = policy or AllowCachePolicy()
        self.ttl = min(policy.ttl, MAX_TTL)
        if policy.ttl > MAX_TTL:
            log.warning(
                "tollgate allow-cache ttl %.3fs clamped to %.1fs (the revocation bound)",
                policy.ttl,
                MAX_TTL,
            )
        self.max_entries = policy.max_entries
        self._lock = threading.Lock()
        self._entries: TTLCache[bytes, bytes] = TTLCache(policy.max_entries, self.ttl, timer)

    def get(self, req: AuthorizeRequest) -> AuthorizeResponse | None:
        """A fresh copy of the cached allowed decision for `req`, if any."""
        if req.apply_limits:
            return None
        k = cache_key(req)
        if k is None:
            return None
        with self._lock:
            raw = self._entries.get(k)
        return None if raw is None else AuthorizeResponse.FromString(raw)

    def put(self, req: AuthorizeRequest, resp: AuthorizeResponse) -> None:
        """Stores `resp` if it may be cached (allowed, no apply_limits, not decided locally)."""
        if req.apply_limits or not resp.allowed or resp.decided_locally:
            return
        k = cache_key(req)
        if k is None:
            return
        raw = resp.SerializeToString()
        with self._lock:
            self._entries[k] = raw

    def clear(self) -> None:
        """Forgets every cached decision (e.g. after revoking a key from this process)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _keys(self) -> list[bytes]:
        """The stored keys (digests), for tests."""
        with self._lock:
            return list(self._entries.keys())
