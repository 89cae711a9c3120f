"""Deadlines, retries only where safe, and the circuit breaker.

Attempts are counted on the wire by a stand-in gRPC server (tests/stub_server.py)
that answers UNAVAILABLE; the sidecar-down cases use the real Tollgate, stopped and
restarted on the same port, and a closed port.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from tests.stub_server import StubTollgate
from tests.tollgate_server import start_server
from tollgate import (
    AsyncTollgateClient,
    BreakerPolicy,
    CircuitOpenError,
    RetryPolicy,
    TollgateClient,
    TollgateUnavailableError,
    v1,
)
from tollgate._core import RPCS
from tollgate.breaker import CircuitBreaker

# (method, request fields): every RPC, split by the contract's retry rule.
RETRIED: list[tuple[str, dict[str, Any]]] = [
    ("authorize", {"api_key": "tg_live_x", "path": "/v1/orders"}),
    ("record_event", {"events": [v1.Event(id="e1", custom_type="x", subject="s")]}),
    ("get_key", {"id": "key_x"}),
    ("list_keys", {}),
    ("list_blocks", {}),
    ("list_events", {}),
    ("list_alerts", {}),
    ("get_usage", {"key_id": "key_x"}),
    ("revoke_key", {"id": "key_x"}),
    ("report_usage", {"id": "resp-1", "key_id": "key_x", "cost": 1}),
    ("list_limit_overrides", {}),
    ("export_keys", {}),
    ("import_keys", {"keys": [v1.KeyExport()]}),
    ("import_keys", {"keys": [v1.KeyExport()], "dry_run": True}),
]
NEVER_RETRIED: list[tuple[str, dict[str, Any]]] = [
    ("check_rate_limit", {"key_id": "key_x"}),
    ("authorize", {"api_key": "tg_live_x", "path": "/v1/orders", "apply_limits": True}),
    ("create_key", {"owner": "o"}),
    ("rotate_key", {"key_id": "key_x"}),
    ("update_key", {"id": "key_x"}),
    ("delete_block", {"subject": "s"}),
    ("set_limit_override", {}),
    ("delete_limit_override", {}),
    ("import_keys", {"keys": [v1.KeyExport()], "overwrite": True}),
    ("import_keys", {"keys": [v1.KeyExport()], "overwrite": True, "dry_run": True}),
    # A new stream would repeat or miss lines: the caller decides.
    ("tail_decisions", {"follow": True}),
    ("follow_events", {}),
]


def test_the_retry_tables_name_every_rpc() -> None:
    covered = {_rpc_name(m) for m, _ in RETRIED + NEVER_RETRIED}
    assert covered == set(RPCS)


def _rpc_name(method: str) -> str:
    return "".join(part.title() for part in method.split("_"))


def _ids(cases: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [m + "".join(f"-{k}" for k, v in f.items() if v is True) for m, f in cases]


@pytest.mark.parametrize(("method", "fields"), RETRIED, ids=_ids(RETRIED))
def test_a_safe_call_is_retried_twice_on_unavailable(
    stub: StubTollgate, method: str, fields: dict[str, Any]
) -> None:
    with (
        TollgateClient(stub.url, timeout=1.0) as tollgate,
        pytest.raises(TollgateUnavailableError) as caught,
    ):
        getattr(tollgate, method)(**fields)
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert stub.calls[_rpc_name(method)] == 3


@pytest.mark.parametrize(("method", "fields"), NEVER_RETRIED, ids=_ids(NEVER_RETRIED))
def test_a_charging_or_changing_call_is_never_retried(
    stub: StubTollgate, method: str, fields: dict[str, Any]
) -> None:
    with (
        TollgateClient(stub.url, timeout=1.0) as tollgate,
        pytest.raises(TollgateUnavailableError),
    ):
        result = getattr(tollgate, method)(**fields)
        if isinstance(result, Iterator):
            list(result)  # a stream fails while it is read
    assert stub.calls[_rpc_name(method)] == 1


@pytest.mark.anyio
async def test_the_async_client_retries_by_the_same_rule(stub: StubTollgate) -> None:
    async with AsyncTollgateClient(stub.url, timeout=1.0) as tollgate:
        with pytest.raises(TollgateUnavailableError):
            await tollgate.authorize(api_key="tg_live_x", path="/v1/orders")
        with pytest.raises(TollgateUnavailableError):
            await tollgate.authorize(api_key="tg_live_x", path="/v1/orders", apply_limits=True)
        with pytest.raises(TollgateUnavailableError):
            await tollgate.check_rate_limit(key_id="key_x")
    assert stub.calls["Authorize"] == 3 + 1
    assert stub.calls["CheckRateLimit"] == 1


def test_the_backoff_uses_full_jitter_under_the_cap() -> None:
    policy = RetryPolicy()
    assert policy.backoff(0, rand=lambda: 1.0) == pytest.approx(0.025)
    assert policy.backoff(1, rand=lambda: 1.0) == pytest.approx(0.05)
    assert policy.backoff(9, rand=lambda: 1.0) == pytest.approx(0.25)  # capped
    assert policy.backoff(3, rand=lambda: 0.0) == 0.0  # full jitter: anywhere from 0


def test_retries_never_run_past_the_deadline(stub: StubTollgate) -> None:
    slow = RetryPolicy(max_retries=50, base_delay=0.03, max_delay=0.03)
    no_breaker = BreakerPolicy(enabled=False)
    with TollgateClient(stub.url, timeout=0.1, retry=slow, breaker=no_breaker) as tollgate:
        started = time.monotonic()
        with pytest.raises(TollgateUnavailableError) as caught:
            tollgate.authorize(api_key="tg_live_x", path="/v1/orders")
        elapsed = time.monotonic() - started
    assert not isinstance(caught.value, CircuitOpenError)
    assert elapsed < 0.1 + 0.1
    assert 2 <= stub.calls["Authorize"] < 20


def test_a_deadline_exceeded_is_not_retried(stub: StubTollgate) -> None:
    stub.failing, stub.delay = False, 0.5
    with TollgateClient(stub.url, timeout=0.1, management_timeout=0.1) as tollgate:
        for call in (
            lambda: tollgate.authorize(api_key="tg_live_x"),  # TollgateService deadline
            lambda: tollgate.get_key(id="key_x"),  # KeyService deadline
        ):
            started = time.monotonic()
            with pytest.raises(TollgateUnavailableError) as caught:
                call()
            assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
            assert time.monotonic() - started < 0.3
    assert stub.calls["Authorize"] == 1 and stub.calls["GetKey"] == 1


def test_the_token_goes_to_key_service_and_rotate_by_id_only(stub: StubTollgate) -> None:
    stub.failing = False
    with TollgateClient(stub.url, management_token="stub-token") as tollgate:
        tollgate.list_keys()
        tollgate.rotate_key(key_id="key_x")
        tollgate.rotate_key(current_secret="tg_live_x")
        tollgate.authorize(api_key="tg_live_x")
        tollgate.report_usage(id="resp-1", key_id="key_x", cost=1)
    sent = [md.get("authorization") for md in stub.metadata]
    assert sent == ["Bearer stub-token", "Bearer stub-token", None, None, "Bearer stub-token"]


def test_the_breaker_opens_after_five_failures_fails_fast_and_closes_again(
    stub: StubTollgate,
) -> None:
    with TollgateClient(stub.url, timeout=1.0) as tollgate:
        for _ in range(5):
            with pytest.raises(TollgateUnavailableError) as caught:
                tollgate.check_rate_limit(key_id="key_x")
            assert not isinstance(caught.value, CircuitOpenError)
        assert tollgate.breaker.state == "open"
        started = time.monotonic()
        with pytest.raises(CircuitOpenError) as open_error:
            tollgate.check_rate_limit(key_id="key_x")
        assert open_error.value.code == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - started < 0.05  # failed fast, no network
        assert stub.calls["CheckRateLimit"] == 5

        stub.failing = False  # Tollgate is back
        time.sleep(1.05)  # half-open after 1 s
        assert tollgate.breaker.state == "half-open"
        tollgate.check_rate_limit(key_id="key_x")  # the trial call succeeds
        assert tollgate.breaker.state == "closed"
        tollgate.check_rate_limit(key_id="key_x")
        assert stub.calls["CheckRateLimit"] == 7


def test_a_failed_trial_opens_the_breaker_again(stub: StubTollgate) -> None:
    quick = BreakerPolicy(failure_threshold=2, reset_timeout=0.2)
    with TollgateClient(stub.url, timeout=1.0, breaker=quick, retry=RetryPolicy(0)) as tollgate:
        for _ in range(2):
            with pytest.raises(TollgateUnavailableError):
                tollgate.get_key(id="key_x")
        assert tollgate.breaker.state == "open"
        time.sleep(0.25)
        with pytest.raises(TollgateUnavailableError) as caught:
            tollgate.get_key(id="key_x")  # the trial reaches the server and fails
        assert not isinstance(caught.value, CircuitOpenError)
        assert tollgate.breaker.state == "open"
        with pytest.raises(CircuitOpenError):
            tollgate.get_key(id="key_x")
    assert stub.calls["GetKey"] == 3


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_half_open_lets_one_trial_through_at_a_time() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=5, reset_timeout=1.0), clock)
    for _ in range(4):
        breaker.failure(breaker.acquire())  # type: ignore[arg-type]
    ok = breaker.acquire()
    assert ok is not None
    breaker.success(ok)  # an answer resets the consecutive count
    for _ in range(5):
        permit = breaker.acquire()
        assert permit is not None
        breaker.failure(permit)
    assert breaker.state == "open" and breaker.acquire() is None
    clock.now = 0.999
    assert breaker.acquire() is None
    clock.now = 1.0
    trial = breaker.acquire()
    assert trial is not None and trial.trial
    assert breaker.acquire() is None  # others still fail fast during the trial
    breaker.release(trial)  # a cancelled trial frees the slot
    trial = breaker.acquire()
    assert trial is not None and trial.trial
    breaker.success(trial)
    assert breaker.state == "closed"
    assert breaker.acquire() is not None


def test_a_closed_port_is_unavailable_within_the_deadline(closed_port: int) -> None:
    with TollgateClient(f"http://127.0.0.1:{closed_port}") as tollgate:
        started = time.monotonic()
        with pytest.raises(TollgateUnavailableError):
            tollgate.authorize(api_key="tg_live_x", path="/v1/orders")
        assert time.monotonic() - started < 0.5


def test_tollgate_stopped_then_restarted_opens_then_closes_the_breaker() -> None:
    srv = start_server()
    port = srv.port
    try:
        with TollgateClient(srv.url) as tollgate:
            assert not tollgate.authorize(path="/v1/orders").allowed  # reachable: a denial
            srv.stop()
            failures = 0
            while tollgate.breaker.state == "closed":
                with pytest.raises(TollgateUnavailableError):
                    tollgate.check_rate_limit(key_id="key_x")
                failures += 1
                assert failures <= 5
            assert failures == 5
            with pytest.raises(CircuitOpenError):
                tollgate.authorize(path="/v1/orders")
            srv = start_server(port=port)
            deadline = time.monotonic() + 10
            while True:  # half-open after 1 s, then the trial reaches the new process
                try:
                    decision = tollgate.authorize(path="/v1/orders")
                    break
                except TollgateUnavailableError:
                    assert time.monotonic() < deadline, "breaker never closed"
                    time.sleep(0.1)
            assert decision.reason == v1.REASON_MISSING_KEY
            assert tollgate.breaker.state == "closed"
    finally:
        srv.stop()


def test_default_deadlines_are_200ms_and_2s(stub: StubTollgate) -> None:
    stub.failing, stub.delay = False, 1.0
    with TollgateClient(stub.url) as tollgate:
        started = time.monotonic()
        with pytest.raises(TollgateUnavailableError) as caught:
            tollgate.authorize(api_key="tg_live_x")
        assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert 0.18 < time.monotonic() - started < 0.6
        tollgate.list_keys()  # 1 s is within KeyService's 2 s
        core = tollgate._core  # 30 s would be a slow test: the plan says it
        assert core.plan("ExportKeys", v1.ExportKeysRequest(), None).budget == 30.0
        assert core.plan("ImportKeys", v1.ImportKeysRequest(), None).budget == 30.0
        assert core.plan("ListKeys", v1.ListKeysRequest(), None).budget == 2.0


def test_export_and_import_get_the_bulk_deadline(stub: StubTollgate) -> None:
    stub.failing, stub.delay = False, 0.3
    with TollgateClient(stub.url, management_timeout=0.1, bulk_timeout=2.0) as tollgate:
        with pytest.raises(TollgateUnavailableError) as caught:
            tollgate.list_keys()
        assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        tollgate.export_keys()  # 0.3 s is within the bulk 2 s
        tollgate.import_keys(keys=[v1.KeyExport()])
