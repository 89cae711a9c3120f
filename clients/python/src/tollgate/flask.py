"""`Tollgate`: the Flask extension.

    Tollgate(app)                      # or: tollgate = Tollgate(); tollgate.init_app(app)

Every request is checked in a ``before_request`` hook with the blocking TollgateClient;
the identity is at ``flask.g.tollgate`` (a TollgateState; None on a skipped path), the
decision's RateLimit headers are added in ``after_request``, and denials are answered as
application/problem+json before the view runs. Per-route options: ``@route_options(...)``
under ``@app.route(...)``, found through ``request.endpoint``. Options and outcomes are
those of the ASGI middleware (tollgate.guard).
"""

from __future__ import annotations

from collections.abc import Sequence

from flask import Flask, Response, current_app, g, request

from tollgate.client import TollgateClient
from tollgate.errors import TollgateError
from tollgate.guard import FailMode, Guard, Verdict
from tollgate.routes import options_of

__all__ = ["Tollgate"]

_HEADERS = "_tollgate_response_headers"


class Tollgate:
    """Flask extension; arguments as for tollgate.asgi.TollgateMiddleware, with a
    blocking `client` (TollgateClient; default: one built from the environment or
    `server`)."""

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
    ) -> None:
        self.client = client if client is not None else TollgateClient(server)
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
                verdict = self.guard.on_decision(self.client.authorize(authorize))
            except TollgateError as err:
                verdict = self.guard.on_error(err)
        if verdict.proceed:
            g.tollgate = verdict.state
            setattr(g, _HEADERS, verdict.headers)
            return None
        return _response(verdict)

    def _after_request(self, response: Response) -> Response:
        for name, value in g.pop(_HEADERS, ()):
            response.headers.add(name, value)
        return response


def _response(verdict: Verdict) -> Response:
    return Response(verdict.body, status=verdict.status, headers=verdict.headers)
