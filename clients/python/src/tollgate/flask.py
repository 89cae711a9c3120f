"""`Tollgate`: the Flask extension.

    Tollgate(app)                      # or: tollgate = Tollgate(); tollgate.init_app(app)

Every request is checked in a ``before_request`` hook with the blocking TollgateClient;
the identity is at ``flask.g.tollgate`` (a TollgateState; None on a skipped path), the
decision's RateLimit headers are added in ``after_request``, and denials are answered as
application/problem+json before the view runs. A cost known only after the response:
``g.tollgate.report_usage(n)`` in the view, or ``usage_after_response=lambda response: n``,
called once the response has been sent (``call_on_close``). Per-route options: ``@route_options(...)``
under ``@app.route(...)``, found through ``request.endpoint``. Options and outcomes are
those of the ASGI middleware (tollgate.guard).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable, Sequence

from flask import Flask, Response, current_app, g, request

from tollgate._gen.tollgate.v1.tollgate_service_pb2 import AuthorizeRequest, AuthorizeResponse
from tollgate.client import TollgateClient
from tollgate.errors import TollgateError
from tollgate.guard import FailMode, Guard, Verdict
from tollgate.routes import options_of
from tollgate.state import TollgateState

__all__ = ["Tollgate"]

_HEADERS = "_tollgate_response_headers"
log = logging.getLogger("tollgate")


class Tollgate:
    """Flask extension; arguments as for tollgate.asgi.TollgateMiddleware, with a
    blocking `client` (TollgateClient; default: one built from the environment or
    `server`), and `usage_after_response`: ``response -> int | None``, the cost of a
    finished response (e.g. from a header the view set), reported with ReportUsage once it
    has been sent; 0 or None reports nothing, a failure is logged, never raised."""

    def __init__(
        self,
        app: Flask | None = None,
        *,
        client: TollgateClient | None = None,
        server: str | None = None,
        header: str = "x-api-key",
        trusted_proxies: int | Sequence[str] = 0,
        skip: Sequence[str] = (),
        skip_prefixes: Sequence[str] = (),
        fail_mode: FailMode = "closed",
        endpoint: str | None = None,
        scopes: Sequence[str] = (),
        apply_limits: bool = True,
        usage_after_response: Callable[[Response], int | None] | None = None,
    ) -> None:
        self.client = client if client is not None else TollgateClient(server)
        self.usage_after_response = usage_after_response
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
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Registers the hooks on `app`."""
        app.extensions["tollgate"] = self
        app.before_request(self._before_request)
        app.after_request(self._after_request)

    def _before_request(self) -> Response | None:
        view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
        route = options_of(view)
        path = request.script_root + request.path
        if self.guard.skipped(path, route):
            g.tollgate = None
            return None
        key = request.headers.get(self.guard.header, "")
        verdict = self.guard.precheck(request.method, path)
        if verdict is None:
            authorize = self.guard.request(
                key=key,
                method=request.method,
                path=path,
                peer=request.environ.get("REMOTE_ADDR"),
                forwarded=request.headers.getlist("X-Forwarded-For"),
                route=route,
            )
            try:
                decision = self.client.authorize(authorize)
                verdict = self.guard.on_decision(decision)
                if verdict.proceed and verdict.state is not None:
                    reporting = self._reporting(verdict.state, authorize, decision)
                    verdict = dataclasses.replace(verdict, state=reporting)
            except TollgateError as err:
                verdict = self.guard.on_error(err)
        if verdict.proceed:
            g.tollgate = verdict.state
            setattr(g, _HEADERS, verdict.headers)
            return None
        return _response(verdict)

    def _reporting(
        self, state: TollgateState, authorize: AuthorizeRequest, decision: AuthorizeResponse
    ) -> TollgateState:
        """`state` with a blocking `report_usage` for this request."""
        seq = itertools.count(1)
        guard, client = self.guard, self.client

        def report(cost: int) -> object:
            return client.report_usage(guard.report_request(authorize, decision, next(seq), cost))

        return dataclasses.replace(state, reporter=report)

    def _after_request(self, response: Response) -> Response:
        for name, value in g.pop(_HEADERS, ()):
            response.headers.add(name, value)
        state = g.get("tollgate")
        usage = self.usage_after_response
        if usage is not None and state is not None and state.reporter is not None:
            response.call_on_close(lambda: _report_after(usage, response, state))
        return response


def _report_after(
    usage: Callable[[Response], int | None], response: Response, state: TollgateState
) -> None:
    try:
        cost = usage(response)
        if cost:
            state.report_usage(int(cost))
    except Exception as err:  # the response is sent: a report never fails it
        log.warning("tollgate ReportUsage after the response failed: %s", err)


def _response(verdict: Verdict) -> Response:
    return Response(verdict.body, status=verdict.status, headers=verdict.headers)
