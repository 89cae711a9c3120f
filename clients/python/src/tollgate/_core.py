"""What the sync and asyncio clients share: settings, the RPC table, metadata, requests.

Each client keeps only its transport loop (blocking `grpc` or `grpc.aio`); every
decision — deadline, token, retry safety, breaker, allow-cache — is taken here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import grpc
from google.protobuf.message import Message

from tollgate.allow_cache import AllowCache, AllowCachePolicy
from tollgate.breaker import BreakerPolicy, CircuitBreaker
from tollgate.config import (
    BULK_RPCS,
    DEFAULT_BULK_TIMEOUT,
    DEFAULT_CHANNEL_OPTIONS,
    DEFAULT_MANAGEMENT_TIMEOUT,
    DEFAULT_TIMEOUT,
    Target,
    parse_server,
    resolve_server,
    resolve_token,
)
from tollgate.retry import RetryPolicy, is_retry_safe

M = TypeVar("M", bound=Message)

Service = Literal["TollgateService", "KeyService"]

# Every RPC of tollgate.v1 and the service it belongs to.
RPCS: dict[str, Service] = {
    "Authorize": "TollgateService",
    "CheckRateLimit": "TollgateService",
    "RecordEvent": "TollgateService",
    "RotateKey": "TollgateService",
    "ReportUsage": "TollgateService",
    "CreateKey": "KeyService",
    "GetKey": "KeyService",
    "ListKeys": "KeyService",
    "UpdateKey": "KeyService",
    "RevokeKey": "KeyService",
    "ListBlocks": "KeyService",
    "DeleteBlock": "KeyService",
    "SetLimitOverride": "KeyService",
    "DeleteLimitOverride": "KeyService",
    "ListLimitOverrides": "KeyService",
    "ListEvents": "KeyService",
    "ListAlerts": "KeyService",
    "GetUsage": "KeyService",
    "ExportKeys": "KeyService",
    "ImportKeys": "KeyService",
    "TailDecisions": "KeyService",
    "FollowEvents": "KeyService",
}

# The server-streaming RPCs: no deadline unless the caller gives one, no retry, no breaker.
STREAM_RPCS = frozenset({"TailDecisions", "FollowEvents"})


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """How one stream is opened: its method path, deadline (None: none) and metadata."""

    rpc: str
    path: str
    timeout: float | None
    metadata: tuple[tuple[str, str], ...] | None


@dataclass(frozen=True, slots=True)
class CallPlan:
    """How one call is made: its method path, budget, metadata and retry safety."""

    rpc: str
    path: str
    budget: float
    metadata: tuple[tuple[str, str], ...] | None
    retry_safe: bool


def build_request(cls: type[M], request: M | None, fields: dict[str, Any]) -> M:
    """`request` itself, or `cls(**fields)`; both or a wrong type is a TypeError."""
    if request is None:
        return cls(**fields)
    if fields:
        raise TypeError(f"pass either a {cls.__name__} or its fields as keywords, not both")
    if not isinstance(request, cls):
        raise TypeError(f"expected {cls.__name__}, got {type(request).__name__}")
    return request


class ClientCore:
    """Settings of a client (see TollgateClient for each argument)."""

    def __init__(
        self,
        server: str | None = None,
        *,
        management_token: str | None = None,
        management_token_file: str | os.PathLike[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        management_timeout: float = DEFAULT_MANAGEMENT_TIMEOUT,
        bulk_timeout: float = DEFAULT_BULK_TIMEOUT,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        allow_cache: AllowCachePolicy | bool | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        channel_options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        if timeout <= 0 or management_timeout <= 0 or bulk_timeout <= 0:
            raise ValueError("timeouts must be positive (seconds)")
        self.server = resolve_server(server)
        self.target: Target = parse_server(self.server)
        self._token = resolve_token(management_token, management_token_file)
        self.timeout = timeout
        self.management_timeout = management_timeout
        self.bulk_timeout = bulk_timeout
        self.retry = retry or RetryPolicy()
        self.breaker = CircuitBreaker(breaker)
        if allow_cache is True:
            allow_cache = AllowCachePolicy()
        self.allow_cache = AllowCache(allow_cache) if allow_cache else None
        if self.target.tls and credentials is None:
            credentials = grpc.ssl_channel_credentials()
        self.credentials = credentials if self.target.tls else None
        overridden = {name for name, _ in channel_options}
        self.channel_options: list[tuple[str, Any]] = [
            *(o for o in DEFAULT_CHANNEL_OPTIONS if o[0] not in overridden),
            *channel_options,
        ]

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in an error message."""
        return (self._token,) if self._token else ()

    def plan(self, rpc: str, request: Message, timeout: float | None) -> CallPlan:
        """Deadline budget, metadata and retry safety of one call."""
        service = RPCS[rpc]
        management = service == "KeyService"
        # RotateKey by key id, and ReportUsage without the reported request's own
        # api_key, act on any key: they take the token (never sent otherwise).
        needs_token = (
            management
            or (rpc == "RotateKey" and bool(getattr(request, "key_id", "")))
            or (rpc == "ReportUsage" and not getattr(request, "api_key", ""))
        )
        if timeout is not None:
            budget = timeout
        elif rpc in BULK_RPCS:
            budget = self.bulk_timeout
        else:
            budget = self.management_timeout if management else self.timeout
        if budget <= 0:
            raise ValueError("timeout must be positive (seconds)")
        md = (("authorization", f"Bearer {self._token}"),) if needs_token and self._token else None
        return CallPlan(
            rpc, f"tollgate.v1.{service}/{rpc}", budget, md, is_retry_safe(rpc, request)
        )

    def stream_plan(self, rpc: str, timeout: float | None) -> StreamPlan:
        """Deadline and metadata of one stream (management RPCs: the token)."""
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive (seconds)")
        md = (("authorization", f"Bearer {self._token}"),) if self._token else None
        return StreamPlan(rpc, f"tollgate.v1.{RPCS[rpc]}/{rpc}", timeout, md)

    def __repr__(self) -> str:  # never shows the token
        token = "set" if self._token else "none"
        return f"server={self.server!r} management_token={token}"
