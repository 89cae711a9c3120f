"""The Flask extension in front of a real Flask app (werkzeug's make_server on
127.0.0.1:0 in a thread) and a real Tollgate."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flask import Flask, Response, g, request
from werkzeug.serving import make_server

from tests.conftest import new_key
from tests.test_asgi import assert_problem
from tests.tollgate_server import TollgateServer
from tollgate import TollgateClient, route_options
from tollgate.flask import Tollgate


def make_app(client: TollgateClient, **options: Any) -> Flask:
    app = Flask("tollgate-test")
    Tollgate(app, client=client, skip=["/healthz"], skip_prefixes=["/public/"], **options)

    def show() -> dict[str, Any]:
        state = g.tollgate
        return {
            "key_id": state.key_id,
            "owner": state.owner,
            "scopes": list(state.scopes),
            "metadata": state.metadata,
            "unavailable": state.unavailable,
        }

    @app.get("/v1/orders")
    def list_orders() -> dict[str, Any]:
        return show()

    @app.post("/v1/orders")
    @route_options(endpoint="create-order", scopes=["orders:write"])
    def create_order() -> dict[str, Any]:
        return show()

    @app.get("/v1/limited")
    def limited() -> dict[str, Any]:
        return show()

    @app.get("/v1/report")
    @route_options(endpoint="list-orders")
    def report() -> dict[str, Any]:
        r = g.tollgate.report_usage(int(request.args["cost"]))
        return {"duplicate": r.duplicate, "limits": [s.name for s in r.limits]}

    @app.get("/v1/heavy")
    @route_options(endpoint="list-orders")
    def heavy() -> tuple[dict[str, Any], int, dict[str, str]]:
        return {}, 200, {"x-test-usage": request.args.get("usage", "0")}

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"ok": True, "tollgate": g.tollgate}

    @app.get("/public/<name>")
    @route_options(skip=True)
    def public(name: str) -> dict[str, Any]:
        return {"name": name}

    return app


class Served:
    """A Flask app served by werkzeug on 127.0.0.1:0 in a thread."""

    def __init__(self, app: Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.server.server_port}")

    def close(self) -> None:
        self.http.close()
        self.server.shutdown()
        self.thread.join(timeout=10)


@pytest.fixture()
def serve() -> Iterator[Any]:
    started: list[Served] = []

    def run(app: Flask) -> httpx.Client:
        s = Served(app)
        started.append(s)
        return s.http

    yield run
    for s in started:
        s.close()


def test_an_allowed_request_gets_g_tollgate_and_ratelimit_headers(
    server: TollgateServer, client: TollgateClient, serve: Any
) -> None:
    created = new_key(client)
    web = serve(make_app(client))
    resp = web.get("/v1/orders?x=1", headers={"x-api-key": created.secret})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "key_id": created.key.id,
        "owner": created.key.owner,
        "scopes": ["orders:read"],
        "metadata": {"team": "py"},
        "unavailable": False,
    }
    assert resp.headers["ratelimit-policy"] == '"orders";q=100;w=60'
    assert resp.headers["ratelimit"].startswith('"orders";r=99;')


def test_each_denial_is_a_problem_with_the_decision_headers(
    client: TollgateClient, serve: Any
) -> None:
    created = new_key(client)
    web = serve(make_app(client))
    missing = web.get("/v1/orders")
    assert_problem(missing, 401, "missing_key")
    assert missing.headers["www-authenticate"] == 'ApiKey realm="tollgate"'
    unknown = web.get("/v1/orders", headers={"x-api-key": "tg_live_" + "A" * 30})
    assert_problem(unknown, 401, "invalid_key")
    assert_problem(
        web.post("/v1/orders", headers={"x-api-key": created.secret}), 403, "insufficient_scope"
    )
    for _ in range(2):
        assert web.get("/v1/limited", headers={"x-api-key": created.secret}).status_code == 200
    limited = web.get("/v1/limited", headers={"x-api-key": created.secret})
    assert_problem(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) > 0
    assert limited.headers["ratelimit"].startswith('"limited";r=0;')


def test_a_route_option_adds_scopes(client: TollgateClient, serve: Any) -> None:
    writer = new_key(client, "orders:read", "orders:write")
    web = serve(make_app(client))
    assert web.post("/v1/orders", headers={"x-api-key": writer.secret}).status_code == 200


def test_skip_list_and_fail_modes_when_tollgate_is_down(
    closed_port: int, serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    down = TollgateClient(f"http://127.0.0.1:{closed_port}")
    closed = serve(make_app(down))
    assert closed.get("/healthz").json() == {"ok": True, "tollgate": None}
    assert closed.get("/public/logo").status_code == 200
    with caplog.at_level(logging.WARNING, logger="tollgate"):
        body = assert_problem(closed.get("/v1/orders"), 503, "unavailable")
    assert "decision_id" not in body and "failing closed" in caplog.text

    opened = serve(make_app(TollgateClient(f"http://127.0.0.1:{closed_port}"), fail_mode="open"))
    resp = opened.get("/v1/orders", headers={"x-api-key": "tg_live_whatever"})
    assert resp.status_code == 200
    assert resp.json()["key_id"] is None and resp.json()["unavailable"] is True


def test_x_forwarded_for_needs_a_trusted_proxy(client: TollgateClient, serve: Any) -> None:
    created = client.create_key(owner="flask-ip", scopes=["orders:read"], ip_allow=["203.0.113.7"])
    headers = {"x-api-key": created.secret, "x-forwarded-for": "203.0.113.7"}
    untrusted = serve(make_app(client))
    assert_problem(untrusted.get("/v1/orders", headers=headers), 403, "ip_denied")
    trusted = serve(make_app(client, trusted_proxies=["127.0.0.1/32"]))
    assert trusted.get("/v1/orders", headers=headers).status_code == 200


def test_a_view_reports_usage_after_the_fact_and_the_next_request_sees_the_debt(
    client: TollgateClient, serve: Any
) -> None:
    http = serve(make_app(client))
    headers = {"x-api-key": new_key(client).secret}
    resp = http.get("/v1/report?cost=500", headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"duplicate": False, "limits": ["orders"]}
    assert_problem(http.get("/v1/orders", headers=headers), 429, "rate_limited")


def test_usage_after_response_reports_once_the_response_is_sent(
    client: TollgateClient, serve: Any
) -> None:
    def usage(response: Response) -> int:
        return int(response.headers.get("x-test-usage", "0"))

    http = serve(make_app(client, usage_after_response=usage))
    headers = {"x-api-key": new_key(client).secret}
    assert http.get("/v1/heavy?usage=0", headers=headers).status_code == 200
    assert http.get("/v1/heavy?usage=500", headers=headers).status_code == 200
    # Reported from call_on_close, after the response went out: wait for it.
    for _ in range(40):
        resp = http.get("/v1/orders", headers=headers)
        if resp.status_code == 429:
            break
        time.sleep(0.025)
    assert_problem(resp, 429, "rate_limited")
