"""No client or middleware output ever carries an API key or the management token."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest

from tests.conftest import new_key
from tests.test_asgi import make_app as make_asgi_app
from tests.test_flask import Served, make_app as make_flask_app
from tests.tollgate_server import TollgateServer, start_server
from tollgate import AsyncTollgateClient, TollgateClient, TollgateError


@pytest.mark.anyio
async def test_no_key_or_token_in_any_log_output_or_error(
    server: TollgateServer,
    closed_port: int,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    token = "py-secret-token-" + uuid.uuid4().hex
    secured = start_server(token=token)
    errors: list[str] = []
    caplog.set_level(logging.DEBUG)  # every logger, every level
    try:
        with TollgateClient(secured.url, management_token=token) as admin:
            created = new_key(admin)
            admin.revoke_key(id=new_key(admin).key.id)
        secret = created.secret
        with TollgateClient(secured.url, management_token=token + "x") as wrong:
            try:
                wrong.list_keys()
            except TollgateError as e:
                errors += [str(e), repr(e), e.details]

        key = {"x-api-key": secret}
        down = f"http://127.0.0.1:{closed_port}"
        for app in (
            make_asgi_app(AsyncTollgateClient(secured.url)),
            make_asgi_app(AsyncTollgateClient(down)),
            make_asgi_app(AsyncTollgateClient(down), fail_mode="open"),
        ):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as c:
                for path in ("/v1/orders", "/v1/limited", "/v1/bad", "/v1/open"):
                    errors.append((await c.get(path, headers=key)).text)
                errors.append((await c.post("/v1/orders", headers=key)).text)
        for client in (TollgateClient(secured.url), TollgateClient(down)):
            web = Served(make_flask_app(client))
            try:
                for path in ("/v1/orders", "/v1/limited", "/healthz"):
                    errors.append(web.http.get(path, headers=key).text)
            finally:
                web.close()
        with TollgateClient(secured.url) as plain:
            for bad in ({"required_scopes": ["bad scope"]}, {"client_ip": "nope"}):
                try:
                    plain.authorize(api_key=secret, **bad)
                except TollgateError as e:
                    errors += [str(e), repr(e)]
    finally:
        secured.stop()
    out, err = capfd.readouterr()
    everything = "\n".join([caplog.text, out, err, *errors])
    assert "INVALID_ARGUMENT" in everything  # the failure paths above really ran
    assert "failing" in caplog.text
    for value in (secret, token):
        assert value not in everything
