"""`AsyncTollgateClient`: the asyncio client (for ASGI apps: Starlette, FastAPI).

The same methods, settings and resilience as TollgateClient (see tollgate.client), as
coroutines over `grpc.aio`::

    from tollgate import AsyncTollgateClient

    tollgate = AsyncTollgateClient()
    decision = await tollgate.authorize(api_key=key, method="GET", path="/v1/orders")

The channel is opened lazily on the event loop of the first call (grpc.aio channels
belong to one loop), so a client may be built at import time, before the server's loop
exists. Used from another loop later, it opens a new channel there.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import grpc
import grpc.aio
from google.protobuf.message import Message

from tollgate import v1
from tollgate._core import RPCS, ClientCore, build_request
from tollgate._gen.tollgate.v1 import key_service_pb2_grpc, tollgate_service_pb2_grpc
from tollgate.allow_cache import AllowCache, AllowCachePolicy
from tollgate.breaker import BreakerPolicy, CircuitBreaker
from tollgate.config import DEFAULT_BULK_TIMEOUT, DEFAULT_MANAGEMENT_TIMEOUT, DEFAULT_TIMEOUT
from tollgate.errors import CircuitOpenError, TollgateUnavailableError, from_rpc_error
from tollgate.retry import RetryPolicy

R = TypeVar("R", bound=Message)


class AsyncTollgateClient:
    """Asyncio Tollgate client over gRPC (HTTP/2); arguments as for TollgateClient."""

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
        self._core = ClientCore(
            server,
            management_token=management_token,
            management_token_file=management_token_file,
            timeout=timeout,
            management_timeout=management_timeout,
            bulk_timeout=bulk_timeout,
            retry=retry,
            breaker=breaker,
            allow_cache=allow_cache,
            credentials=credentials,
            channel_options=channel_options,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._channel: grpc.aio.Channel | None = None
        self._methods: dict[str, Callable[..., Any]] = {}
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    @property
    def server(self) -> str:
        """The server URL in use."""
        return self._core.server

    @property
    def breaker(self) -> CircuitBreaker:
        """The client's circuit breaker (its `state` is "closed", "open" or "half-open")."""
        return self._core.breaker

    @property
    def allow_cache(self) -> AllowCache | None:
        """The allow-cache, or None when it is off."""
        return self._core.allow_cache

    async def close(self) -> None:
        """Closes the channel (a later call opens a new one)."""
        channel, self._channel, self._loop = self._channel, None, None
        self._methods = {}
        if channel is not None:
            await channel.close()

    async def __aenter__(self) -> AsyncTollgateClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncTollgateClient({self._core!r})"

    def _stubs(self) -> dict[str, Callable[..., Any]]:
        loop = asyncio.get_running_loop()
        if self._channel is None or self._loop is not loop:
            core = self._core
            if core.credentials is not None:
                channel = grpc.aio.secure_channel(
                    core.target.address, core.credentials, options=core.channel_options
                )
            else:
                channel = grpc.aio.insecure_channel(
                    core.target.address, options=core.channel_options
                )
            stubs = {
                "TollgateService": tollgate_service_pb2_grpc.TollgateServiceStub(channel),
                "KeyService": key_service_pb2_grpc.KeyServiceStub(channel),
            }
            self._methods = {rpc: getattr(stubs[svc], rpc) for rpc, svc in RPCS.items()}
            self._channel, self._loop = channel, loop
        return self._methods

    async def _call(self, rpc: str, request: Message, timeout: float | None, out: type[R]) -> R:
        core = self._core
        plan = core.plan(rpc, request, timeout)
        deadline = time.monotonic() + plan.budget
        fn = self._stubs()[rpc]
        retry = 0
        while True:
            permit = core.breaker.acquire()
            if permit is None:
                raise CircuitOpenError(plan.path)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                core.breaker.release(permit)
                raise TollgateUnavailableError(
                    grpc.StatusCode.DEADLINE_EXCEEDED, plan.path, "deadline exceeded"
                )
            try:
                response = await fn(request, timeout=remaining, metadata=plan.metadata)
            except grpc.RpcError as e:
                err = from_rpc_error(e, plan.path, *core.secrets)
                if err.unavailable:
                    core.breaker.failure(permit)
                else:
                    core.breaker.success(permit)
                if (
                    plan.retry_safe
                    and err.code == grpc.StatusCode.UNAVAILABLE
                    and retry < core.retry.max_retries
                ):
                    delay = core.retry.backoff(retry)
                    if time.monotonic() + delay < deadline:
                        await self._sleep(delay)
                        retry += 1
                        continue
                raise err from None
            except BaseException:
                core.breaker.release(permit)
                raise
            core.breaker.success(permit)
            return cast(R, response)

    async def _stream(
        self, rpc: str, request: Message, timeout: float | None
    ) -> AsyncIterator[Any]:
        plan = self._core.stream_plan(rpc, timeout)
        call = self._stubs()[rpc](request, timeout=plan.timeout, metadata=plan.metadata)
        try:
            async for response in call:
                yield response
        except grpc.RpcError as e:
            raise from_rpc_error(e, plan.path, *self._core.secrets) from None
        finally:
            # Leaving the loop early (or aclose()) ends the call on the server too.
            call.cancel()

    def tail_decisions(
        self,
        request: v1.TailDecisionsRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> AsyncIterator[v1.TailDecisionsResponse]:
        """This replica's decisions: up to `backlog` (0..1000) recent ones, oldest
        first, then, with `follow=True`, each as it is taken, until `limit`. Sends the
        management token; no deadline unless `timeout` is given; never retried.
        Stop early by leaving the loop (or calling `aclose()` on the iterator): the
        call is cancelled. A failure raises TollgateError while iterating."""
        return self._stream(
            "TailDecisions", build_request(v1.TailDecisionsRequest, request, fields), timeout
        )

    def follow_events(
        self,
        request: v1.FollowEventsRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> AsyncIterator[v1.FollowEventsResponse]:
        """Security events as they are stored (from `start_time`, default the call's
        start), oldest first, with ListEvents' filters; ends and fails as
        `tail_decisions` does."""
        return self._stream(
            "FollowEvents", build_request(v1.FollowEventsRequest, request, fields), timeout
        )

    async def _authorize(
        self, request: v1.AuthorizeRequest, timeout: float | None
    ) -> v1.AuthorizeResponse:
        cache = self._core.allow_cache
        if cache is not None:
            hit = cache.get(request)
            if hit is not None:
                return hit
        response = await self._call("Authorize", request, timeout, v1.AuthorizeResponse)
        if cache is not None:
            cache.put(request, response)
        return response

    async def authorize(
        self,
        request: v1.AuthorizeRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> v1.AuthorizeResponse:
        """Checks an API key for a request (with `apply_limits`, also charges its limits). A
        denial is data: `allowed=False` with `http_status` 401/403/429. Retried on
        UNAVAILABLE only without `apply_limits`; served from the allow-cache when
        enabled (allowed decisions without `apply_limits` only)."""
        return await self._authorize(build_request(v1.AuthorizeRequest, request, fields), timeout)

    async def check_rate_limit(
        self,
        request: v1.CheckRateLimitRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> v1.CheckRateLimitResponse:
        """Checks and charges the limits of a key / IP / subject on an endpoint. Never retried
        (it charges)."""
        return await self._call(
            "CheckRateLimit",
            build_request(v1.CheckRateLimitRequest, request, fields),
            timeout,
            v1.CheckRateLimitResponse,
        )

    async def record_event(
        self,
        request: v1.RecordEventRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> v1.RecordEventResponse:
        """Records 1..100 security events; retried on UNAVAILABLE (idempotent by event id)."""
        return await self._call(
            "RecordEvent",
            build_request(v1.RecordEventRequest, request, fields),
            timeout,
            v1.RecordEventResponse,
        )

    async def report_usage(
        self,
        request: v1.ReportUsageRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> v1.ReportUsageResponse:
        """Charges a cost known only after the response (LLM tokens, rows exported) to the
        limits a CheckRateLimit with the same facts would charge, without denying; the next
        decision sees the debt. Idempotent by `id`, so retried on UNAVAILABLE. With the
        reported request's `api_key` no management token is needed (the middleware's
        `report_usage` does that); by `key_id` the token is sent."""
        return await self._call(
            "ReportUsage",
            build_request(v1.ReportUsageRequest, request, fields),
            timeout,
            v1.ReportUsageResponse,
        )

    async def rotate_key(
        self,
        request: v1.RotateKeyRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> v1.RotateKeyResponse:
        """Issues a new secret (by `key_id` with the management token, or by `current_secret`).
        Never retried."""
        return await self._call(
            "RotateKey",
            build_request(v1.RotateKeyRequest, request, fields),
            timeout,
            v1.RotateKeyResponse,
        )

    async def create_key(
        self,
        request: v1.CreateKeyRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> v1.CreateKeyResponse:
        """Creates a key; the response's `secret` is shown once. Never retried."""
        return await self._call(
            "CreateKey",
            build_request(v1.CreateKeyRequest, request, fields),
            timeout,
            v1.CreateKeyResponse,
        )

    async def get_key(
        self,
        request: v1.GetKeyRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> v1.GetKeyResponse:
        """Returns a key (never its secret). Retried on UNAVAILABLE."""
        return await self._call(
            "GetKey", build_request(v1.GetKeyRequest, request, fields), timeout, v1.GetKeyResponse
        )

    async def list_keys(
        self,
        request: v1.ListKeysRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> v1.ListKeysResponse:
        """Lists keys a page at a time. Retried on UNAVAILABLE."""
        return await self._call(
            "ListKeys",
            build_request(v1.ListKeysRequest, request, fields),
            timeout,
            v1.ListKeysResponse,
        )

    async def update_key(
        self,
        request: v1.UpdateKeyRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> v1.UpdateKeyResponse:
        """Changes the fields named in `update_mask`. Never retried."""
        return await self._call(
            "UpdateKey",
            build_request(v1.UpdateKeyRequest, request, fields),
            timeout,
            v1.UpdateKeyResponse,
        )

    async def revoke_key(
        self,
        request: v1.RevokeKeyRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> v1.RevokeKeyResponse:
        """Revokes a key at once and for good; retried on UNAVAILABLE (idempotent)."""
        return await self._call(
            "RevokeKey",
            build_request(v1.RevokeKeyRequest, request, fields),
            timeout,
            v1.RevokeKeyResponse,
        )

    async def list_blocks(
        self,
        request: v1.ListBlocksRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> v1.ListBlocksResponse:
        """Lists active blocks. Retried on UNAVAILABLE."""
        return await self._call(
            "ListBlocks",
            build_request(v1.ListBlocksRequest, request, fields),
            timeout,
            v1.ListBlocksResponse,
        )

    async def delete_block(
        self,
        request: v1.DeleteBlockRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> v1.DeleteBlockResponse:
        """Lifts a block. Never retried."""
        return await self._call(
            "DeleteBlock",
            build_request(v1.DeleteBlockRequest, request, fields),
            timeout,
            v1.DeleteBlockResponse,
        )

    async def set_limit_override(
        self,
        request: v1.SetLimitOverrideRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> v1.SetLimitOverrideResponse:
        """Sets a key's or an owner's override of one named limit (raise, lower or exempt;
        optional expiry). Never retried."""
        return await self._call(
            "SetLimitOverride",
            build_request(v1.SetLimitOverrideRequest, request, fields),
            timeout,
            v1.SetLimitOverrideResponse,
        )

    async def delete_limit_override(
        self,
        request: v1.DeleteLimitOverrideRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> v1.DeleteLimitOverrideResponse:
        """Removes a key's or an owner's override of one named limit. Never retried."""
        return await self._call(
            "DeleteLimitOverride",
            build_request(v1.DeleteLimitOverrideRequest, request, fields),
            timeout,
            v1.DeleteLimitOverrideResponse,
        )

    async def list_limit_overrides(
        self,
        request: v1.ListLimitOverridesRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> v1.ListLimitOverridesResponse:
        """Lists the overrides of a key (with its effective limits) or an owner, or every
        one; retried on UNAVAILABLE."""
        return await self._call(
            "ListLimitOverrides",
            build_request(v1.ListLimitOverridesRequest, request, fields),
            timeout,
            v1.ListLimitOverridesResponse,
        )

    async def list_events(
        self,
        request: v1.ListEventsRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> v1.ListEventsResponse:
        """Lists security events, newest first. Retried on UNAVAILABLE."""
        return await self._call(
            "ListEvents",
            build_request(v1.ListEventsRequest, request, fields),
            timeout,
            v1.ListEventsResponse,
        )

    async def list_alerts(
        self,
        request: v1.ListAlertsRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> v1.ListAlertsResponse:
        """Lists alerts, newest first. Retried on UNAVAILABLE."""
        return await self._call(
            "ListAlerts",
            build_request(v1.ListAlertsRequest, request, fields),
            timeout,
            v1.ListAlertsResponse,
        )

    async def get_usage(
        self,
        request: v1.GetUsageRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> v1.GetUsageResponse:
        """A key's request counts over a time range. Retried on UNAVAILABLE."""
        return await self._call(
            "GetUsage",
            build_request(v1.GetUsageRequest, request, fields),
            timeout,
            v1.GetUsageResponse,
        )

    async def export_keys(
        self,
        request: v1.ExportKeysRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> v1.ExportKeysResponse:
        """One page of every key (revoked ones too) with its secrets' digests, by id: the
        backup. Deadline `bulk_timeout` (30 s). Retried on UNAVAILABLE (it only reads)."""
        return await self._call(
            "ExportKeys",
            build_request(v1.ExportKeysRequest, request, fields),
            timeout,
            v1.ExportKeysResponse,
        )

    async def iter_export_keys(
        self,
        request: v1.ExportKeysRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> AsyncIterator[v1.ExportKeysResponse]:
        """Every page of ExportKeys in turn, from `page_token` (default: the first page) to the
        last. Each page is one `export_keys` call with its own deadline (`timeout`, else
        `bulk_timeout`) and retries, and carries the `pepper_fingerprint_prefix` its records
        need on import."""
        req = v1.ExportKeysRequest()
        req.CopyFrom(build_request(v1.ExportKeysRequest, request, fields))
        while True:
            page = await self.export_keys(req, timeout=timeout)
            yield page
            if not page.next_page_token:
                return
            req.page_token = page.next_page_token

    async def import_keys(
        self,
        request: v1.ImportKeysRequest | None = None,
        /,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> v1.ImportKeysResponse:
        """Imports 1..500 records (an export, or foreign keys by SHA-256 digest), one outcome
        per record (`dry_run`, `overwrite`). Deadline `bulk_timeout` (30 s). Retried on
        UNAVAILABLE only without `overwrite` (idempotent then)."""
        return await self._call(
            "ImportKeys",
            build_request(v1.ImportKeysRequest, request, fields),
            timeout,
            v1.ImportKeysResponse,
        )
