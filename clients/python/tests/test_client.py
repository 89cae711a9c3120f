"""TollgateClient and AsyncTollgateClient against a real Tollgate: every RPC, typed."""

from __future__ import annotations

import importlib
import re
import time
import uuid
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from tests.conftest import new_key
from tests.tollgate_server import TollgateServer, start_server
from tollgate import AsyncTollgateClient, TollgateClient, TollgateError, v1
from tollgate._core import RPCS
from tollgate._gen.tollgate.v1 import key_service_pb2, tollgate_service_pb2
from tollgate.config import parse_server
from tollgate.retry import is_retry_safe


def test_there_is_a_method_for_every_rpc_of_both_services() -> None:
    services = (
        tollgate_service_pb2.DESCRIPTOR.services_by_name["TollgateService"],
        key_service_pb2.DESCRIPTOR.services_by_name["KeyService"],
    )
    rpcs = {m.name: s.name for s in services for m in s.methods}
    assert {"ExportKeys", "ImportKeys"} <= rpcs.keys()
    assert rpcs == RPCS
    for rpc in rpcs:
        method = re.sub(r"(?<!^)(?=[A-Z])", "_", rpc).lower()
        assert callable(getattr(TollgateClient, method)), method
        assert callable(getattr(AsyncTollgateClient, method)), method


def test_v1_exports_every_message_enum_and_enum_value() -> None:
    for name in ("common", "event", "key", "key_export", "key_service", "live", "ratelimit"):
        fd = importlib.import_module(f"tollgate._gen.tollgate.v1.{name}_pb2").DESCRIPTOR
        names = [*fd.message_types_by_name, *fd.enum_types_by_name]
        names += [v.name for e in fd.enum_types_by_name.values() for v in e.values]
        assert [n for n in names if n not in v1.__all__] == [], name
    fd = tollgate_service_pb2.DESCRIPTOR
    assert [n for n in fd.message_types_by_name if n not in v1.__all__] == []


def test_every_tollgate_service_rpc_returns_its_typed_response(client: TollgateClient) -> None:
    created = new_key(client)
    assert isinstance(created, v1.CreateKeyResponse)
    assert created.secret.startswith("tg_live_")

    decision = client.authorize(api_key=created.secret, method="GET", path="/v1/orders")
    assert isinstance(decision, v1.AuthorizeResponse)
    assert decision.allowed and decision.reason == v1.REASON_OK
    assert decision.identity.key_id == created.key.id
    assert decision.endpoint == "list-orders"

    limits = client.check_rate_limit(key_id=created.key.id, endpoint="limited")
    assert isinstance(limits, v1.CheckRateLimitResponse)
    assert limits.allowed and limits.result.deciding.name == "limited"

    event_id = f"py-{uuid.uuid4().hex}"
    event = v1.Event(
        id=event_id,
        custom_type="py.login_failed",
        subject=created.key.id,
        subject_kind=v1.SUBJECT_KIND_KEY,
        severity=v1.SEVERITY_LOW,
    )
    recorded = client.record_event(v1.RecordEventRequest(events=[event]))
    assert isinstance(recorded, v1.RecordEventResponse)
    assert list(recorded.accepted_ids) == [event_id]
    again = client.record_event(events=[event])
    assert list(again.duplicate_ids) == [event_id]

    rotated = client.rotate_key(current_secret=created.secret, grace_period=duration_pb2.Duration())
    assert isinstance(rotated, v1.RotateKeyResponse)
    assert rotated.secret != created.secret
    by_id = client.rotate_key(key_id=created.key.id)
    assert by_id.key.id == created.key.id


def test_every_key_service_rpc_returns_its_typed_response(client: TollgateClient) -> None:
    created = new_key(client)
    key_id = created.key.id

    got = client.get_key(id=key_id)
    assert isinstance(got, v1.GetKeyResponse) and got.key.owner == created.key.owner
    listed = client.list_keys(owner=created.key.owner)
    assert isinstance(listed, v1.ListKeysResponse)
    assert [k.id for k in listed.keys] == [key_id]

    updated = client.update_key(
        id=key_id,
        update_mask=field_mask_pb2.FieldMask(paths=["scopes"]),
        scopes=["orders:read", "orders:write"],
    )
    assert isinstance(updated, v1.UpdateKeyResponse)
    assert list(updated.key.scopes) == ["orders:read", "orders:write"]

    blocks = client.list_blocks()
    assert isinstance(blocks, v1.ListBlocksResponse)
    lifted = client.delete_block(subject_kind=v1.SUBJECT_KIND_IP, subject="203.0.113.9")
    assert isinstance(lifted, v1.DeleteBlockResponse) and not lifted.lifted

    events = client.list_events(subject=key_id)
    assert isinstance(events, v1.ListEventsResponse)
    deadline = time.monotonic() + 5  # Tollgate's own events are written off the call path
    while not any(e.type == v1.EVENT_TYPE_KEY_UPDATED for e in events.events):
        assert time.monotonic() < deadline, "no key_updated event"
        time.sleep(0.05)
        events = client.list_events(subject=key_id)
    alerts = client.list_alerts()
    assert isinstance(alerts, v1.ListAlertsResponse)

    client.authorize(api_key=created.secret, method="GET", path="/v1/orders", apply_limits=True)
    usage = client.get_usage(key_id=key_id)
    assert isinstance(usage, v1.GetUsageResponse)

    revoked = client.revoke_key(id=key_id, reason="test")
    assert isinstance(revoked, v1.RevokeKeyResponse)
    assert revoked.key.status == v1.KEY_STATUS_REVOKED
    assert revoked.key.revoked_reason == "test"


def _exported(pages: list[v1.ExportKeysResponse]) -> tuple[list[v1.KeyExport], str]:
    records = [r for p in pages for r in p.keys]
    fingerprints = {p.pepper_fingerprint_prefix for p in pages}
    assert len(fingerprints) == 1
    (fingerprint,) = fingerprints
    assert re.fullmatch(r"[0-9a-f]{8}", fingerprint)
    return records, fingerprint


def test_export_all_keys_a_page_at_a_time_and_import_them_back(client: TollgateClient) -> None:
    a, b = new_key(client, "orders:read"), new_key(client, "orders:write")
    pages = list(client.iter_export_keys(page_size=1))
    assert all(isinstance(p, v1.ExportKeysResponse) and len(p.keys) <= 1 for p in pages)
    records, fingerprint = _exported(pages)
    ids = [r.key.id for r in records]
    assert {a.key.id, b.key.id} <= set(ids)
    assert ids == sorted(ids)  # ordered by id
    mine = next(r for r in records if r.key.id == a.key.id)
    assert mine.key.owner == a.key.owner and re.fullmatch(r"[\w-]{43}", mine.secret_digest)

    # Restoring into the same server changes nothing.
    restored = client.import_keys(keys=records, pepper_fingerprint_prefix=fingerprint)
    assert isinstance(restored, v1.ImportKeysResponse)
    assert [r.index for r in restored.results] == list(range(len(records)))
    assert [r.key_id for r in restored.results] == ids
    assert {r.outcome for r in restored.results} == {v1.IMPORT_OUTCOME_UNCHANGED}

    # A modified record is a conflict; a dry run writes nothing.
    changed = v1.KeyExport()
    changed.CopyFrom(mine)
    changed.key.owner = "someone-else"
    dry = client.import_keys(
        v1.ImportKeysRequest(keys=[changed], dry_run=True, pepper_fingerprint_prefix=fingerprint)
    )
    assert [r.outcome for r in dry.results] == [v1.IMPORT_OUTCOME_CONFLICT]
    assert "owner" in dry.results[0].detail
    assert client.get_key(id=a.key.id).key.owner == a.key.owner


@pytest.mark.anyio
async def test_async_client_exports_and_imports_keys(server: TollgateServer) -> None:
    async with AsyncTollgateClient(server.url) as tollgate:
        created = await tollgate.create_key(owner=f"async-{uuid.uuid4().hex[:8]}")
        pages = [p async for p in tollgate.iter_export_keys(page_size=1)]
        records, fingerprint = _exported(pages)
        assert created.key.id in [r.key.id for r in records]
        restored = await tollgate.import_keys(keys=records, pepper_fingerprint_prefix=fingerprint)
        assert {r.outcome for r in restored.results} == {v1.IMPORT_OUTCOME_UNCHANGED}
        first = await tollgate.export_keys(page_size=1)
        assert len(first.keys) == 1 and first.next_page_token


@pytest.mark.anyio
async def test_async_client_calls_the_same_rpcs(server: TollgateServer) -> None:
    async with AsyncTollgateClient(server.url) as tollgate:
        created = await tollgate.create_key(owner=f"async-{uuid.uuid4().hex[:8]}")
        decision = await tollgate.authorize(
            v1.AuthorizeRequest(api_key=created.secret, method="GET", path="/v1/other")
        )
        assert decision.allowed and decision.identity.owner == created.key.owner
        got = await tollgate.get_key(id=created.key.id)
        assert got.key.id == created.key.id
        with pytest.raises(TollgateError) as caught:
            await tollgate.get_key(id="key_doesnotexist0000")
        assert caught.value.code == grpc.StatusCode.NOT_FOUND


def test_streams_decisions_and_events_and_cancels_on_leaving_the_loop(
    client: TollgateClient,
) -> None:
    client.authorize(api_key="", method="GET", path="/v1/streamed")
    lines = list(client.tail_decisions(backlog=1, denied_only=True))
    assert [d.reason for d in lines] == ["MISSING_KEY"]
    assert isinstance(lines[0], v1.TailDecisionsResponse)

    start = Timestamp()
    start.GetCurrentTime()
    kind = f"py_probe_{uuid.uuid4().hex[:8]}"
    events = client.follow_events(custom_type=kind, start_time=start, limit=1)
    client.record_event(events=[v1.Event(id=f"{kind}-1", custom_type=kind, subject="probe")])
    assert [r.event.subject for r in events] == ["probe"]

    # Following never ends by itself: leaving the loop cancels the call.
    live = client.tail_decisions(backlog=1, follow=True)
    for line in live:
        assert line.reason == "MISSING_KEY"
        break
    live.close()
    assert not is_retry_safe("TailDecisions", v1.TailDecisionsRequest())
    assert not is_retry_safe("FollowEvents", v1.FollowEventsRequest())


@pytest.mark.anyio
async def test_async_client_streams_decisions(server: TollgateServer) -> None:
    async with AsyncTollgateClient(server.url) as tollgate:
        await tollgate.authorize(api_key="", method="GET", path="/v1/streamed")
        lines = [d async for d in tollgate.tail_decisions(backlog=1, denied_only=True)]
        assert [d.reason for d in lines] == ["MISSING_KEY"]
        with pytest.raises(TollgateError) as caught:
            [d async for d in tollgate.tail_decisions(backlog=1001)]
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_a_denial_is_data_not_an_error(client: TollgateClient) -> None:
    decision = client.authorize(api_key="", method="GET", path="/v1/orders")
    assert not decision.allowed
    assert decision.reason == v1.REASON_MISSING_KEY and decision.http_status == 401


def test_invalid_argument_names_the_field_never_the_value(client: TollgateClient) -> None:
    created = new_key(client)
    with pytest.raises(TollgateError) as caught:
        client.authorize(api_key=created.secret, path="/v1/orders", required_scopes=["bad scope"])
    err = caught.value
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in err.field_violations] == ["required_scopes[0]"]
    assert "required_scopes[0]" in str(err)
    assert created.secret not in str(err) and created.secret not in repr(err)


def test_request_or_fields_but_not_both(client: TollgateClient) -> None:
    with pytest.raises(TypeError):
        client.get_key(v1.GetKeyRequest(id="key_x"), id="key_y")
    with pytest.raises(TypeError):
        client.get_key(v1.ListKeysRequest())  # type: ignore[arg-type]


def test_management_token_from_the_environment_file_and_explicit_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "py-test-management-token-" + uuid.uuid4().hex
    srv = start_server(token=token)
    try:
        monkeypatch.delenv("TOLLGATE_MANAGEMENT_TOKEN", raising=False)
        monkeypatch.delenv("TOLLGATE_MANAGEMENT_TOKEN_FILE", raising=False)
        with TollgateClient(srv.url) as anonymous, pytest.raises(TollgateError) as caught:
            anonymous.list_keys()
        assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
        assert token not in str(caught.value)

        monkeypatch.setenv("TOLLGATE_MANAGEMENT_TOKEN", token)
        with TollgateClient(srv.url) as from_env:
            from_env.list_keys()
            assert token not in repr(from_env)

        token_file = tmp_path / "token"
        token_file.write_text(token + "\n")
        monkeypatch.setenv("TOLLGATE_MANAGEMENT_TOKEN", "wrong")
        monkeypatch.setenv("TOLLGATE_MANAGEMENT_TOKEN_FILE", str(token_file))
        with TollgateClient(srv.url) as from_file:  # the file wins over the variable
            created = from_file.create_key(owner="token-file")
            # RotateKey by id needs the token; by current secret it does not.
            current = from_file.rotate_key(key_id=created.key.id).secret

        with TollgateClient(srv.url, management_token="wrong") as explicit:
            with pytest.raises(TollgateError) as caught:  # explicit beats the environment
                explicit.list_keys()
            assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
            assert "wrong" not in str(caught.value)
        monkeypatch.delenv("TOLLGATE_MANAGEMENT_TOKEN_FILE")
        monkeypatch.delenv("TOLLGATE_MANAGEMENT_TOKEN")
        with TollgateClient(srv.url) as anonymous:
            rotated = anonymous.rotate_key(current_secret=current)
            assert rotated.key.id == created.key.id
    finally:
        srv.stop()


def test_server_address_from_the_environment(
    server: TollgateServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLGATE_SERVER", server.url)
    with TollgateClient() as tollgate:
        assert tollgate.server == server.url
        assert not tollgate.authorize(path="/v1/orders").allowed


def test_server_urls_are_parsed_like_the_cli() -> None:
    assert parse_server("http://127.0.0.1:50051").address == "127.0.0.1:50051"
    assert not parse_server("http://127.0.0.1:50051").tls
    assert parse_server("https://tollgate.internal").address == "tollgate.internal:443"
    assert parse_server("https://tollgate.internal").tls
    assert parse_server("http://[::1]:50051/").address == "[::1]:50051"
    for bad in ("127.0.0.1:50051", "grpc://x:1", "http://x:1/prefix", "http://u:p@x:1"):
        with pytest.raises(ValueError):
            parse_server(bad)
