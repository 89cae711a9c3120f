"""A consecutive-failure circuit breaker, shared by the sync and the asyncio client.

States:

- **closed** — calls go through; each UNAVAILABLE or DEADLINE_EXCEEDED *attempt* counts as a
  failure, any answer from Tollgate (OK or another status) resets the count. After
  `failure_threshold` (5) consecutive failures the breaker opens.
- **open** — calls fail fast with `CircuitOpenError` (UNAVAILABLE) without touching the
  network, for `reset_timeout` seconds (1 s).
- **half-open** — after that, ONE trial call goes through while the others still fail fast.
  If Tollgate answers, the breaker closes; if the trial fails, it opens for another
  `reset_timeout`.

Why not a library: pybreaker (the well-kept choice) is sync-first (its async path needs
Tornado), times the open state with the wall clock (`datetime.now`: a clock stepped back
would keep the breaker open and a fail-closed app answering 503 for as long as the step),
and lets every concurrent call through in half-open; aiobreaker and purgatory are
asyncio-only. This one is ~80 lines on `time.monotonic` (injectable for tests), takes a
`threading.Lock` only around counter updates (never across I/O, so it is safe in threads
and on an event loop alike), and is unit-tested with a fake clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

State = Literal["closed", "open", "half-open"]


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to make one attempt; `trial` marks the single half-open trial."""

    trial: bool


_ORDINARY = Permit(trial=False)
_TRIAL = Permit(trial=True)


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When the breaker opens and for how long.

    Attributes:
        failure_threshold: consecutive UNAVAILABLE/deadline attempts that open it (default 5).
        reset_timeout: seconds it stays open before a trial call (default 1.0).
        enabled: False turns the breaker off (every call goes through).
    """

    failure_threshold: int = 5
    reset_timeout: float = 1.0
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("BreakerPolicy.failure_threshold must be at least 1")
        if self.reset_timeout <= 0:
            raise ValueError("BreakerPolicy.reset_timeout must be positive")


class CircuitBreaker:
    """See the module docstring. `acquire()` before each attempt, then exactly one of
    `success(permit)`, `failure(permit)` or `release(permit)` (attempt abandoned)."""

    def __init__(
        self, policy: BreakerPolicy | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self._state: State = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> State:
        """The current state (an open breaker past its timeout reads as half-open)."""
        with self._lock:
            if (
                self._state == "open"
                and self._clock() - self._opened_at >= self.policy.reset_timeout
            ):
                return "half-open"
            return self._state

    def acquire(self) -> Permit | None:
        """May an attempt go ahead? None: no (fail fast); else the permit to report back."""
        if not self.policy.enabled:
            return _ORDINARY
        with self._lock:
            if self._state == "closed":
                return _ORDINARY
            if self._state == "open":
                if self._clock() - self._opened_at < self.policy.reset_timeout:
                    return None
                self._state = "half-open"
            if self._trial_in_flight:
                return None
            self._trial_in_flight = True
            return _TRIAL

    def success(self, permit: Permit) -> None:
        """Tollgate answered (OK or a status other than UNAVAILABLE/DEADLINE_EXCEEDED)."""
        if not self.policy.enabled:
            return
        with self._lock:
            if permit.trial:
                self._trial_in_flight = False
                self._state = "closed"
                self._failures = 0
            elif self._state == "closed":
                self._failures = 0

    def failure(self, permit: Permit) -> None:
        """The attempt failed with UNAVAILABLE or DEADLINE_EXCEEDED."""
        if not self.policy.enabled:
            return
        with self._lock:
            if permit.trial:
                self._trial_in_flight = False
                self._open()
            elif self._state == "closed":
                self._failures += 1
                if self._failures >= self.policy.failure_threshold:
                    self._open()

    def release(self, permit: Permit) -> None:
        """The attempt ended without an outcome (cancelled): frees the trial slot."""
        if permit.trial:
            with self._lock:
                self._trial_in_flight = False

    def _open(self) -> None:
        self._state = "open"
        self._opened_at = self._clock()
        self._failures = 0
