"""`TollgateState`: what the middleware hands to a request's handler.

Starlette / FastAPI: ``request.state.tollgate`` (i.e. ``scope["state"]["tollgate"]``);
Flask: ``flask.g.tollgate``. It is None on a skipped path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tollgate._gen.tollgate.v1.key_pb2 import Identity
from tollgate._gen.tollgate.v1.tollgate_service_pb2 import AuthorizeResponse


@dataclass(frozen=True, slots=True)
class TollgateState:
    """The outcome of Tollgate for one request that was let through.

    Attributes:
        identity: the caller (key id, owner, tier, scopes, metadata, environment);
            None when Tollgate was unreachable and the middleware failed open.
        decision: the full Authorize decision (endpoint, hints, rate_limit, decision_id);
            None when failed open.
        decided: ``"tollgate"`` when Tollgate allowed the request, ``"fail-open"`` when it
            was unreachable and ``fail_mode="open"`` let the request through unchecked.
    """

    identity: Identity | None
    decision: AuthorizeResponse | None
    decided: Literal["tollgate", "fail-open"]
    # Set by the middleware on allowed requests; holds the request's key, so never shown.
    reporter: Callable[[int], Any] | None = field(default=None, repr=False, compare=False)

    def report_usage(self, cost: int) -> Any:
        """Reports a cost known only now (e.g. LLM tokens) for this request: charged to its
        key's, endpoint's and client IP's limits without denying it (ReportUsage); the next
        decision sees the debt. Each call is one report, idempotent by its own id
        (``<decision id>.<n>``), authenticated by the request's own key (no management token).

        Flask: returns the ReportUsageResponse. Starlette / FastAPI: returns an awaitable
        of it (``await state.report_usage(n)``). None when failed open (nothing to charge).
        """
        if self.reporter is None:
            return None
        return self.reporter(cost)

    @property
    def unavailable(self) -> bool:
        """True if Tollgate was unreachable and the request was let through (fail open)."""
        return self.decided == "fail-open"

    @property
    def key_id(self) -> str | None:
        """The caller's key id (None when failed open)."""
        return self.identity.key_id if self.identity is not None else None

    @property
    def owner(self) -> str | None:
        """The key's owner (None when failed open)."""
        return self.identity.owner if self.identity is not None else None

    @property
    def tier(self) -> str | None:
        """The key's tier (None when failed open)."""
        return self.identity.tier if self.identity is not None else None

    @property
    def scopes(self) -> tuple[str, ...]:
        """The scopes granted to the key (empty when failed open)."""
        return tuple(self.identity.scopes) if self.identity is not None else ()

    @property
    def metadata(self) -> dict[str, str]:
        """The key's metadata (empty when failed open)."""
        return dict(self.identity.metadata) if self.identity is not None else {}
