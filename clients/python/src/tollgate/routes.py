"""Per-route options: a Tollgate endpoint name, extra scopes, or no check at all.

Put the decorator *under* the framework's route decorator, so the function the
framework registers carries the options::

    @app.post("/v1/orders")                                    # FastAPI / Flask / Starlette
    @route_options(endpoint="create-order", scopes=["orders:write"])
    async def create_order(request: Request): ...

The ASGI middleware finds the route the way Starlette's router will (each route's
``matches(scope)``, through Mounts), Flask's extension by ``request.endpoint``. Without
options, Tollgate matches the policy endpoint from the request's method and path, with
the middleware's defaults (``endpoint=``, ``scopes=``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

F = TypeVar("F")

ATTRIBUTE = "__tollgate_route__"


@dataclass(frozen=True, slots=True)
class RouteOptions:
    """Options of one route.

    Attributes:
        endpoint: policy endpoint name sent as Authorize's ``endpoint`` (None: the
            middleware's default, else matched from method and path).
        scopes: scopes required in addition to the endpoint's (and the middleware's).
        skip: True to let this route through without Tollgate (like the skip list).
    """

    endpoint: str | None = None
    scopes: tuple[str, ...] = ()
    skip: bool = False


def route_options(
    *, endpoint: str | None = None, scopes: Sequence[str] = (), skip: bool = False
) -> Callable[[F], F]:
    """Decorator attaching RouteOptions to a view function (returned unchanged)."""
    if isinstance(scopes, str):
        raise TypeError("scopes must be a list of strings, not a string")
    options = RouteOptions(endpoint, tuple(scopes), skip)

    def attach(view: F) -> F:
        setattr(view, ATTRIBUTE, options)
        return view

    return attach


def options_of(view: object) -> RouteOptions | None:
    """The RouteOptions attached to `view`, if any."""
    found = getattr(view, ATTRIBUTE, None)
    return found if isinstance(found, RouteOptions) else None
