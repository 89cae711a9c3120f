"""Retries: exponential backoff with full jitter, only on UNAVAILABLE, only where safe.

A call is retried only if repeating it cannot charge or change anything twice:

| retried on UNAVAILABLE | never retried |
| --- | --- |
| Authorize *without* `apply_limits`, RecordEvent (idempotent by event id), GetKey, ListKeys, ListBlocks, ListEvents, ListAlerts, GetUsage, ExportKeys, RevokeKey (idempotent), ReportUsage (idempotent by its `id`), ImportKeys *without* `overwrite`, dry run or not (idempotent: a record the lost attempt wrote reads UNCHANGED) | CheckRateLimit and Authorize *with* `apply_limits` (they charge limits and have no idempotency key), CreateKey, RotateKey, UpdateKey, DeleteBlock, ImportKeys *with* `overwrite`, dry run or not (a repeat could replace a change made in between), the streams TailDecisions and FollowEvents (a new stream would repeat or miss lines: the caller decides) |

DEADLINE_EXCEEDED is never retried: the call's deadline is its whole budget, retries
included, and a backoff that would end past it is not slept — the last error is raised.

Why not gRPC's built-in retries (service config `retryPolicy`): they are configured per
method name, and Authorize is safe to repeat or not depending on a request field; the
breaker must also see every attempt.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a safe call is retried on UNAVAILABLE.

    Attributes:
        max_retries: retries after the first attempt (default 2; 0 disables retries).
        base_delay: seconds; the n-th retry (0-based) waits random(0, min(max_delay,
            base_delay * 2**n)) — "full jitter" (default 0.025).
        max_delay: seconds; cap of one backoff (default 0.25).
    """

    max_retries: int = 2
    base_delay: float = 0.025
    max_delay: float = 0.25

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy values must not be negative")

    def backoff(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number `retry` (0 for the first retry)."""
        return rand() * min(self.max_delay, self.base_delay * float(1 << retry))


# RPCs that are always safe to repeat (Authorize and ImportKeys are decided per request).
ALWAYS_SAFE = frozenset(
    {
        "RecordEvent",
        "GetKey",
        "ListKeys",
        "ListBlocks",
        "ListEvents",
        "ListAlerts",
        "ListLimitOverrides",
        "GetUsage",
        "ExportKeys",
        "RevokeKey",
        "ReportUsage",
    }
)


def is_retry_safe(rpc: str, request: object) -> bool:
    """True if `rpc` with this `request` may be sent again after UNAVAILABLE."""
    if rpc == "Authorize":
        return not getattr(request, "apply_limits", False)
    if rpc == "ImportKeys":
        return not getattr(request, "overwrite", False)
    return rpc in ALWAYS_SAFE
