"""TollgateMiddleware in front of real FastAPI and Starlette apps and a real Tollgate.

Most cases go in-process through httpx's ASGITransport; one serves the app with uvicorn
on a real socket (127.0.0.1:0).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from google.protobuf import duration_pb2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.conftest import new_key
from tests.tollgate_server import TollgateServer
from tollgate import AsyncTollgateClient, TollgateClient, route_options
from tollgate.asgi import TollgateMiddleware
from tollgate.fastapi import OptionalTollgateIdentity, TollgateIdentity
from tollgate.guard import QUOTA_EXCEEDED, ProxyTrust


def make_app(client: AsyncTollgateClient, **options: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(
        TollgateMiddleware,
        client=client,
        skip=["/healthz"],
        skip_prefixes=["/public/"],
        **options,
    )

    def show(state: Any) -> dict[str, Any]:
        return {
            "key_id": state.key_id,
            "owner": state.owner,
            "tier": state.tier,
            "scopes": list(state.scopes),
            "metadata": state.metadata,
            "decided": state.decided,
            "unavailable": state.unavailable,
        }

    @app.get("/v1/orders")
    async def list_orders(tollgate: TollgateIdentity) -> dict[str, Any]:
        return show(tollgate)

    @app.post("/v1/orders")
    @route_options(endpoint="create-order", scopes=["orders:write"])
    async def create_order(tollgate: TollgateIdentity) -> dict[str, Any]:
        return show(tollgate)

    @app.get("/v1/limited")
    async def limited(tollgate: TollgateIdentity) -> dict[str, Any]:
        return show(tollgate)

    @app.get("/v1/report")
    @route_options(endpoint="list-orders")
    async def report(request: Request, tollgate: TollgateIdentity) -> dict[str, Any]:
        r = await tollgate.report_usage(int(request.query_params["cost"]))
        return {"duplicate": r.duplicate, "limits": [s.name for s in r.limits]}

    @app.get("/v1/open")
    async def maybe(request: Request, tollgate: OptionalTollgateIdentity) -> dict[str, Any]:
        assert request.state.tollgate is tollgate
        return show(tollgate) if tollgate else {}

    @app.get("/v1/bad")
    @route_options(scopes=["not a scope"])
    async def bad() -> dict[str, Any]:
        return {}

    @app.get("/v1/unchecked")
    @route_options(skip=True)
    async def unchecked(request: Request) -> dict[str, Any]:
        return {"tollgate": request.state.tollgate}

    @app.get("/healthz")
    async def healthz(request: Request) -> dict[str, Any]:
        return {"ok": True, "tollgate": request.state.tollgate}

    @app.get("/public/{name}")
    async def public(name: str) -> dict[str, Any]:
        return {"name": name}

    return app


def http(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")


def assert_problem(resp: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = resp.json()
    assert body["status"] == status and body["reason"] == reason
    assert body["detail"]
    if status == 429:
        assert body["type"] == QUOTA_EXCEEDED and body["title"] == "Quota exceeded"
    else:
        assert body["type"] == "about:blank"
    return body


@pytest.fixture()
def admin(server: TollgateServer) -> Iterator[TollgateClient]:
    with TollgateClient(server.url) as c:
        yield c


@pytest.mark.anyio
async def test_an_allowed_request_gets_the_identity_and_ratelimit_headers(
    server: TollgateServer, admin: TollgateClient
) -> None:
    created = new_key(admin)
    async with http(make_app(AsyncTollgateClient(server.url))) as app:
        resp = await app.get("/v1/orders?page=2", headers={"x-api-key": created.secret})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "key_id": created.key.id,
        "owner": created.key.owner,
        "tier": "free",
        "scopes": ["orders:read"],
        "metadata": {"team": "py"},
        "decided": "tollgate",
        "unavailable": False,
    }
    assert resp.headers["ratelimit-policy"] == '"orders";q=100;w=60'
    assert resp.headers["ratelimit"].startswith('"orders";r=99;')


@pytest.mark.anyio
async def test_each_denial_is_a_problem_with_the_decision_headers(
    server: TollgateServer, admin: TollgateClient
) -> None:
    created = new_key(admin)
    rotated_out = new_key(admin)
    admin.rotate_key(current_secret=rotated_out.secret, grace_period=duration_pb2.Duration())
    async with http(make_app(AsyncTollgateClient(server.url))) as app:
        missing = await app.get("/v1/orders")
        body = assert_problem(missing, 401, "missing_key")
        assert body["title"] == "Unauthorized" and body["decision_id"]
        assert missing.headers["www-authenticate"] == 'ApiKey realm="tollgate"'

        unknown = await app.get("/v1/orders", headers={"x-api-key": rotated_out.secret})
        assert_problem(unknown, 401, "invalid_key")
        assert "invalid_key" in unknown.headers["www-authenticate"]

        scope = await app.post("/v1/orders", headers={"x-api-key": created.secret})
        body = assert_problem(scope, 403, "insufficient_scope")
        assert body["title"] == "Forbidden"

        for _ in range(2):
            ok = await app.get("/v1/limited", headers={"x-api-key": created.secret})
            assert ok.status_code == 200
        limited = await app.get("/v1/limited", headers={"x-api-key": created.secret})
        assert_problem(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) > 0
        assert limited.headers["ratelimit-policy"] == '"limited";q=2;w=60'
        assert limited.headers["ratelimit"].startswith('"limited";r=0;')


@pytest.mark.anyio
async def test_a_route_option_sets_the_endpoint_and_extra_scopes(
    server: TollgateServer, admin: TollgateClient
) -> None:
    created = new_key(admin, "orders:read", "orders:write")
    async with http(make_app(AsyncTollgateClient(server.url))) as app:
        resp = await app.post("/v1/orders", headers={"x-api-key": created.secret})
    assert resp.status_code == 200, resp.text


@pytest.mark.anyio
async def test_the_skip_list_bypasses_tollgate(closed_port: int) -> None:
    # Tollgate is unreachable and the app fails closed: only a skipped path can answer 200.
    down = AsyncTollgateClient(f"http://127.0.0.1:{closed_port}")
    async with http(make_app(down)) as app:
        assert (await app.get("/healthz")).json() == {"ok": True, "tollgate": None}
        assert (await app.get("/public/logo.png")).status_code == 200
        assert (await app.get("/v1/unchecked")).json() == {"tollgate": None}
        assert (await app.get("/healthzx")).status_code == 503  # exact, not a prefix


@pytest.mark.anyio
async def test_sidecar_down_fails_closed_with_503(
    closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(AsyncTollgateClient(f"http://127.0.0.1:{closed_port}"))
    async with http(app) as c:
        resp = await c.get("/v1/orders", headers={"x-api-key": "tg_live_whatever"})
    body = assert_problem(resp, 503, "unavailable")
    assert body["title"] == "Service Unavailable" and "decision_id" not in body
    assert "failing closed" in caplog.text


@pytest.mark.anyio
async def test_sidecar_down_fails_open_without_identity(closed_port: int) -> None:
    app = make_app(AsyncTollgateClient(f"http://127.0.0.1:{closed_port}"), fail_mode="open")
    async with http(app) as c:
        resp = await c.get("/v1/open", headers={"x-api-key": "tg_live_whatever"})
    assert resp.status_code == 200
    assert resp.json()["key_id"] is None
    assert resp.json()["decided"] == "fail-open" and resp.json()["unavailable"] is True


@pytest.mark.anyio
async def test_a_stopped_tollgate_opens_the_breaker_and_still_fails_closed() -> None:
    from tests.tollgate_server import start_server

    srv = start_server()
    client = AsyncTollgateClient(srv.url)
    app = make_app(client)
    try:
        async with http(app) as c:
            assert (await c.get("/v1/orders")).status_code == 401  # reachable
            srv.stop()
            for _ in range(6):
                assert_problem(await c.get("/v1/orders"), 503, "unavailable")
        assert client.breaker.state == "open"
    finally:
        srv.stop()


@pytest.mark.anyio
async def test_x_forwarded_for_is_believed_only_from_trusted_proxies(
    server: TollgateServer, admin: TollgateClient
) -> None:
    created = admin.create_key(owner="ip-test", scopes=["orders:read"], ip_allow=["203.0.113.7"])
    key = {"x-api-key": created.secret}
    client = AsyncTollgateClient(server.url)
    untrusted = make_app(client)
    one_hop = make_app(client, trusted_proxies=1)
    by_network = make_app(client, trusted_proxies=["127.0.0.0/8"])
    async with http(untrusted) as c:  # ASGITransport's peer is 127.0.0.1
        resp = await c.get("/v1/orders", headers={**key, "x-forwarded-for": "203.0.113.7"})
        assert_problem(resp, 403, "ip_denied")
    async with http(one_hop) as c:
        resp = await c.get("/v1/orders", headers={**key, "x-forwarded-for": "203.0.113.7"})
        assert resp.status_code == 200
        spoofed = {**key, "x-forwarded-for": "203.0.113.7, 198.51.100.1"}
        assert_problem(await c.get("/v1/orders", headers=spoofed), 403, "ip_denied")
    async with http(by_network) as c:
        chain = {**key, "x-forwarded-for": "203.0.113.7, 127.0.0.2"}
        assert (await c.get("/v1/orders", headers=chain)).status_code == 200


def test_proxy_trust_counts_hops_back_from_the_peer() -> None:
    assert ProxyTrust().client_ip("10.0.0.1", ["1.2.3.4"]) == "10.0.0.1"
    assert ProxyTrust(1).client_ip("10.0.0.1", ["1.2.3.4, 5.6.7.8"]) == "5.6.7.8"
    assert ProxyTrust(2).client_ip("10.0.0.1", ["1.2.3.4, 5.6.7.8"]) == "1.2.3.4"
    assert ProxyTrust(5).client_ip("10.0.0.1", ["1.2.3.4", "5.6.7.8"]) == "1.2.3.4"
    assert ProxyTrust(1).client_ip("10.0.0.1", ["garbage"]) == "10.0.0.1"
    assert ProxyTrust(1).client_ip("10.0.0.1", ["[2001:db8::1]:443"]) == "2001:db8::1"
    nets = ProxyTrust(["10.0.0.0/8"])
    assert nets.client_ip("10.0.0.1", ["1.2.3.4, 10.9.9.9"]) == "1.2.3.4"
    assert nets.client_ip("192.0.2.1", ["1.2.3.4"]) == "192.0.2.1"  # untrusted peer
    assert ProxyTrust().client_ip(None, []) == ""


@pytest.mark.anyio
async def test_invalid_argument_is_a_500_and_a_log_line_naming_the_field(
    server: TollgateServer, admin: TollgateClient, caplog: pytest.LogCaptureFixture
) -> None:
    created = new_key(admin)
    async with http(make_app(AsyncTollgateClient(server.url))) as app:
        with caplog.at_level(logging.ERROR, logger="tollgate"):
            resp = await app.get("/v1/bad", headers={"x-api-key": created.secret})
    assert_problem(resp, 500, "authorization_error")
    assert "INVALID_ARGUMENT" in caplog.text and "required_scopes[0]" in caplog.text
    assert created.secret not in caplog.text and created.secret not in resp.text


def test_a_real_uvicorn_server_on_a_socket(server: TollgateServer, admin: TollgateClient) -> None:
    created = new_key(admin)
    app = make_app(AsyncTollgateClient(server.url))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    web = uvicorn.Server(config)
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not web.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        port = web.servers[0].sockets[0].getsockname()[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            ok = c.get("/v1/orders", headers={"x-api-key": created.secret})
            assert ok.status_code == 200 and ok.json()["key_id"] == created.key.id
            assert "ratelimit" in ok.headers
            assert_problem(c.get("/v1/orders"), 401, "missing_key")
            assert c.get("/healthz").status_code == 200
    finally:
        web.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive()


async def starlette_orders(request: Any) -> JSONResponse:
    state = request.state.tollgate
    return JSONResponse({"owner": state.owner, "endpoint": state.decision.endpoint})


@route_options(endpoint="create-order", scopes=["orders:write"])
async def starlette_create(request: Any) -> JSONResponse:
    return JSONResponse({"owner": request.state.tollgate.owner})


async def starlette_socket(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_json({"owner": ws.state.tollgate.owner})
    await ws.close()


@pytest.mark.anyio
async def test_plain_starlette_with_a_mount(server: TollgateServer, admin: TollgateClient) -> None:
    reader = new_key(admin)
    app = Starlette(
        routes=[
            Route("/v1/orders", starlette_orders),
            Mount("/api", routes=[Route("/orders", starlette_create, methods=["POST"])]),
        ],
        middleware=[Middleware(TollgateMiddleware, client=AsyncTollgateClient(server.url))],
    )
    async with http(app) as c:
        resp = await c.get("/v1/orders", headers={"x-api-key": reader.secret})
        assert resp.json() == {"owner": reader.key.owner, "endpoint": "list-orders"}
        # the mounted route's options apply: create-order and orders:write
        denied = await c.post("/api/orders", headers={"x-api-key": reader.secret})
        assert_problem(denied, 403, "insufficient_scope")


def test_a_websocket_handshake_is_checked(server: TollgateServer, admin: TollgateClient) -> None:
    created = new_key(admin)
    app = Starlette(
        routes=[WebSocketRoute("/ws", starlette_socket)],
        middleware=[Middleware(TollgateMiddleware, client=AsyncTollgateClient(server.url))],
    )
    with TestClient(app) as c:
        with c.websocket_connect("/ws", headers={"x-api-key": created.secret}) as ws:
            assert ws.receive_json() == {"owner": created.key.owner}
        with pytest.raises(WebSocketDisconnect) as closed, c.websocket_connect("/ws"):
            pass
        assert closed.value.code == 1008


def _usage_header(scope: Any, status: int, headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"x-test-usage":
            return int(value)
    return None


@pytest.mark.anyio
async def test_a_handler_reports_usage_after_the_fact_and_the_next_request_sees_the_debt(
    server: TollgateServer, admin: TollgateClient
) -> None:
    created = new_key(admin)
    headers = {"x-api-key": created.secret}
    async with http(make_app(AsyncTollgateClient(server.url))) as app:
        resp = await app.get("/v1/report?cost=500", headers=headers)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"duplicate": False, "limits": ["orders"]}
        assert_problem(await app.get("/v1/orders", headers=headers), 429, "rate_limited")


@pytest.mark.anyio
async def test_usage_after_response_reports_the_finished_responses_cost(
    server: TollgateServer, admin: TollgateClient
) -> None:
    created = new_key(admin)
    light = {"x-api-key": created.secret, "x-test-usage": "0"}
    heavy = {"x-api-key": created.secret, "x-test-usage": "500"}
    app = make_app(AsyncTollgateClient(server.url), usage_after_response=_usage_header)
    async with http(app) as c:
        for _ in range(3):
            assert (await c.get("/v1/orders", headers=light)).status_code == 200
        assert (await c.get("/v1/orders", headers=heavy)).status_code == 200
        # The report ran when the app returned: the debt is there for the next request.
        assert_problem(await c.get("/v1/orders", headers=light), 429, "rate_limited")
