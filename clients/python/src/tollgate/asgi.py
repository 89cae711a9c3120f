"""`TollgateMiddleware`: a pure ASGI middleware for Starlette, FastAPI and any ASGI app.

    app.add_middleware(TollgateMiddleware)

The identity reaches handlers as ``request.state.tollgate`` (``scope["state"]["tollgate"]``),
a TollgateState (None on a skipped path). Per-route options come from
``@route_options(...)`` on the endpoint function (found by matching the app's routes the
way Starlette's router will) or from a `route_options_for(scope)` callable. HTTP and
WebSocket requests are checked; a denied WebSocket handshake is closed with code 1008
(the server answers the handshake with 403). See tollgate.guard for what is answered when.

If the middleware builds its client (no `client=` given), it closes it when the app's
lifespan shuts down.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from tollgate._gen.tollgate.v1.usage_report_pb2 import ReportUsageResponse
from tollgate.aio import AsyncTollgateClient
from tollgate.errors import TollgateError
from tollgate.guard import FailMode, Guard, Verdict
from tollgate.routes import RouteOptions, options_of
from tollgate.state import TollgateState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# (scope, status, headers as sent) -> the cost to report after the response, or None.
UsageAfterResponse = Callable[[Scope, int, list[tuple[bytes, bytes]]], int | None]

log = logging.getLogger("tollgate")

__all__ = ["TollgateMiddleware", "find_route_options"]


def _search(routes: Sequence[Any], scope: Scope, depth: int = 0) -> RouteOptions | None:
    partial: RouteOptions | None = None
    for route in routes:
        matches = getattr(route, "matches", None)
        if matches is None:
            continue
        try:
            match, child = matches(scope)
        except Exception:  # a route type we do not understand: ignore it
            continue
        kind = getattr(match, "name", "")
        if kind not in ("FULL", "PARTIAL"):
            continue
        sub = getattr(route, "routes", None)
        if sub and depth < 8 and not hasattr(route, "endpoint"):  # a Mount: look inside
            found = _search(sub, {**scope, **child}, depth + 1)
            if found is not None:
                return found
            continue
        opts = options_of(getattr(route, "endpoint", None))
        if kind == "FULL":
            return opts
        if partial is None:
            partial = opts
    return partial


def find_route_options(scope: Scope) -> RouteOptions | None:
    """The RouteOptions of the Starlette/FastAPI route this request will reach, if any."""
    app = scope.get("app")
    router = getattr(app, "router", app)
    routes = getattr(router, "routes", None)
    return _search(routes, scope) if routes else None


class TollgateMiddleware:
    """Checks every HTTP and WebSocket request with Tollgate's Authorize (apply_limits).

    Args:
        app: the ASGI app (given by ``add_middleware``).
        client: the AsyncTollgateClient to use; default: one built from the environment
            ($TOLLGATE_SERVER, …) or `server`.
        server: Tollgate's URL when the middleware builds its client.
        header: header carrying the API key (default ``x-api-key``).
        trusted_proxies: proxies whose X-Forwarded-For is believed: a number of hops or
            a list of networks (default 0: the socket peer is the client).
        skip: exact paths that bypass Tollgate (e.g. ``["/healthz"]``).
        skip_prefixes: path prefixes that bypass Tollgate (e.g. ``["/static/"]``).
        fail_mode: ``"closed"`` (default: 503 when Tollgate is unreachable) or ``"open"``
            (let the request through with ``TollgateState.unavailable`` True, no identity).
        endpoint: default policy endpoint name (default: matched from method and path).
        scopes: scopes required on every route, in addition to the endpoint's.
        apply_limits: charge the endpoint's rate limits in the same decision (default
            True). False only checks the key; then the client's allow-cache may answer.
        route_options_for: ``scope -> RouteOptions | None``, replacing the route lookup
            (for ASGI apps that are not Starlette).
        usage_after_response: ``(scope, status, headers) -> int | None``: the cost of a
            finished HTTP response (e.g. from a header the handler set; `headers` as sent,
            lower-case bytes pairs), reported with ReportUsage once the app has returned;
            0 or None reports nothing, a failure is logged, never raised. Handlers can
            also ``await request.state.tollgate.report_usage(n)`` themselves.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        client: AsyncTollgateClient | None = None,
        server: str | None = None,
        header: str = "x-api-key",
        trusted_proxies: int | Sequence[str] = 0,
        skip: Sequence[str] = (),
        skip_prefixes: Sequence[str] = (),
        fail_mode: FailMode = "closed",
        endpoint: str | None = None,
        scopes: Sequence[str] = (),
        apply_limits: bool = True,
        route_options_for: Callable[[Scope], RouteOptions | None] | None = None,
        usage_after_response: UsageAfterResponse | None = None,
    ) -> None:
        self.app = app
        self._usage = usage_after_response
        self._owns_client = client is None
        self.client = client if client is not None else AsyncTollgateClient(server)
        self.guard = Guard(
            header=header,
            trusted_proxies=trusted_proxies,
            skip=skip,
            skip_prefixes=skip_prefixes,
            fail_mode=fail_mode,
            endpoint=endpoint,
            scopes=scopes,
            apply_limits=apply_limits,
        )
        self._header = self.guard.header.encode("latin-1")
        self._route_options_for = route_options_for or find_route_options

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, self._lifespan_send(send))
            return
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        route = self._route_options_for(scope)
        state = scope.setdefault("state", {})
        if self.guard.skipped(path, route):
            state["tollgate"] = None
            await self.app(scope, receive, send)
            return
        verdict = await self._decide(scope, path, route)
        if verdict.proceed:
            state["tollgate"] = verdict.state
            if kind == "http" and verdict.headers:
                send = _adding_headers(send, verdict.headers)
            usage, tollgate = self._usage, verdict.state
            if kind != "http" or usage is None or tollgate is None or tollgate.reporter is None:
                await self.app(scope, receive, send)
                return
            sent: dict[str, Any] = {}
            await self.app(scope, receive, _recording_start(send, sent))
            await _report_after(usage, scope, sent, tollgate)
            return
        if kind == "websocket":
            message = await receive()
            if message.get("type") == "websocket.connect":
                await send({"type": "websocket.close", "code": 1008})
            return
        await send(
            {
                "type": "http.response.start",
                "status": verdict.status,
                "headers": [(n.encode("latin-1"), v.encode("latin-1")) for n, v in verdict.headers],
            }
        )
        await send({"type": "http.response.body", "body": verdict.body})

    async def _decide(self, scope: Scope, path: str, route: RouteOptions | None) -> Verdict:
        key = ""
        forwarded: list[str] = []
        for name, value in scope.get("headers") or ():
            if name == self._header and not key:
                key = value.decode("latin-1")
            elif name == b"x-forwarded-for":
                forwarded.append(value.decode("latin-1"))
        method: str = scope.get("method", "GET")
        local = self.guard.precheck(method, path)
        if local is not None:
            return local
        client = scope.get("client")
        request = self.guard.request(
            key=key,
            method=method,
            path=path,
            peer=client[0] if client else None,
            forwarded=forwarded,
            route=route,
        )
        try:
            decision = await self.client.authorize(request)
        except TollgateError as err:
            return self.guard.on_error(err)
        verdict = self.guard.on_decision(decision)
        if verdict.state is None or verdict.state.decided != "tollgate":
            return verdict
        seq = itertools.count(1)
        guard, tollgate = self.guard, self.client

        def report(cost: int) -> Awaitable[ReportUsageResponse]:
            return tollgate.report_usage(guard.report_request(request, decision, next(seq), cost))

        return dataclasses.replace(
            verdict, state=dataclasses.replace(verdict.state, reporter=report)
        )

    def _lifespan_send(self, send: Send) -> Send:
        if not self._owns_client:
            return send

        async def wrapped(message: Message) -> None:
            await send(message)
            if message.get("type") == "lifespan.shutdown.complete":
                await self.client.close()

        return wrapped


def _adding_headers(send: Send, headers: list[tuple[str, str]]) -> Send:
    raw = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]

    async def wrapped(message: Message) -> None:
        if message.get("type") == "http.response.start":
            message = dict(message)
            message["headers"] = [*message.get("headers", ()), *raw]
        await send(message)

    return wrapped


def _recording_start(send: Send, sent: dict[str, Any]) -> Send:
    async def wrapped(message: Message) -> None:
        if message.get("type") == "http.response.start":
            sent["status"] = message.get("status", 200)
            sent["headers"] = list(message.get("headers", ()))
        await send(message)

    return wrapped


async def _report_after(
    usage: UsageAfterResponse, scope: Scope, sent: dict[str, Any], state: TollgateState
) -> None:
    if "status" not in sent:
        return
    try:
        cost = usage(scope, sent["status"], sent["headers"])
        if cost:
            await state.report_usage(int(cost))
    except Exception as err:  # the response is sent: a report never fails it
        log.warning("tollgate ReportUsage after the response failed: %s", err)
