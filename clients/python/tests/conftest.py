"""Shared fixtures: a real Tollgate server (session), clients, a closed port."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest

from tests.stub_server import StubTollgate
from tests.tollgate_server import MissingBuild, TollgateServer, start_server
from tollgate import TollgateClient, v1


@pytest.fixture(scope="session")
def server() -> Iterator[TollgateServer]:
    try:
        srv = start_server()
    except MissingBuild as e:
        pytest.fail(str(e), pytrace=False)
    yield srv
    srv.stop()


@pytest.fixture()
def client(server: TollgateServer) -> Iterator[TollgateClient]:
    with TollgateClient(server.url) as c:
        yield c


@pytest.fixture()
def closed_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def new_key(client: TollgateClient, *scopes: str) -> v1.CreateKeyResponse:
    """A fresh key of a unique owner (so per-key and per-owner limits are its own)."""
    return client.create_key(
        owner=f"test-{uuid.uuid4().hex[:12]}",
        scopes=list(scopes) or ["orders:read"],
        metadata={"team": "py"},
    )


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture()
def stub() -> Iterator[StubTollgate]:
    s = StubTollgate()
    yield s
    s.stop()
