"""FastAPI helpers: the identity as a dependency.

    from tollgate.fastapi import TollgateIdentity

    @app.get("/v1/orders")
    async def orders(tollgate: TollgateIdentity):          # a TollgateState, set by the middleware
        return {"owner": tollgate.owner}

`TollgateIdentity` is ``Annotated[TollgateState, Depends(tollgate_state)]``; `OptionalTollgateIdentity`
allows None (a skipped path). Both read ``request.state.tollgate`` set by
tollgate.asgi.TollgateMiddleware; a route reached without the middleware is a
programming error (500), not an anonymous caller.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tollgate.state import TollgateState

__all__ = [
    "OptionalTollgateIdentity",
    "TollgateIdentity",
    "optional_tollgate_state",
    "tollgate_state",
]


def optional_tollgate_state(request: Request) -> TollgateState | None:
    """The TollgateState of this request, or None on a skipped path."""
    state = request.scope.get("state") or {}
    if "tollgate" not in state:
        raise RuntimeError(
            "TollgateMiddleware is not installed: app.add_middleware(TollgateMiddleware)"
        )
    value = state["tollgate"]
    return value if isinstance(value, TollgateState) else None


def tollgate_state(request: Request) -> TollgateState:
    """The TollgateState of this request (the route must not be skipped)."""
    value = optional_tollgate_state(request)
    if value is None:
        raise RuntimeError(
            "this route is skipped by TollgateMiddleware: use OptionalTollgateIdentity"
        )
    return value


TollgateIdentity = Annotated[TollgateState, Depends(tollgate_state)]
OptionalTollgateIdentity = Annotated[TollgateState | None, Depends(optional_tollgate_state)]
