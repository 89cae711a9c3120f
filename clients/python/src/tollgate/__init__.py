"""Tollgate client and middleware for Python.

- `TollgateClient` / `AsyncTollgateClient`: every RPC of tollgate.v1, typed, with
  deadlines, safe retries, a circuit breaker and an optional allow-cache.
- `tollgate.asgi.TollgateMiddleware`: Starlette / FastAPI (`app.add_middleware(TollgateMiddleware)`).
- `tollgate.flask.Tollgate`: Flask (`Tollgate(app)`).
- `tollgate.v1`: the API's messages and enums.
"""

from tollgate import v1
from tollgate.aio import AsyncTollgateClient
from tollgate.allow_cache import AllowCachePolicy
from tollgate.breaker import BreakerPolicy
from tollgate.client import TollgateClient
from tollgate.errors import (
    CircuitOpenError,
    FieldViolation,
    TollgateError,
    TollgateUnavailableError,
)
from tollgate.retry import RetryPolicy
from tollgate.routes import RouteOptions, route_options
from tollgate.state import TollgateState

__version__ = "0.1.0"

__all__ = [
    "AllowCachePolicy",
    "AsyncTollgateClient",
    "BreakerPolicy",
    "CircuitOpenError",
    "FieldViolation",
    "RetryPolicy",
    "RouteOptions",
    "TollgateClient",
    "TollgateError",
    "TollgateState",
    "TollgateUnavailableError",
    "__version__",
    "route_options",
    "v1",
]
