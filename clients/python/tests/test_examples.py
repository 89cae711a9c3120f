"""examples/fastapi and examples/flask start, and answer through Tollgate, as documented."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import new_key
from tests.tollgate_server import REPO, TollgateServer
from tollgate import TollgateClient


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("example", ["fastapi", "flask"])
def test_the_example_serves_through_tollgate(
    example: str, server: TollgateServer, client: TollgateClient
) -> None:
    app = REPO / "examples" / example / "app.py"
    port = _free_port()
    env = {**os.environ, "TOLLGATE_SERVER": server.url, "PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, str(app)],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, _output(proc)
            assert time.monotonic() < deadline, "example did not start"
            time.sleep(0.1)
        created = new_key(client)
        ok = httpx.get(f"{base}/v1/orders", headers={"x-api-key": created.secret})
        assert ok.status_code == 200, ok.text
        assert ok.json()["owner"] == created.key.owner
        denied = httpx.get(f"{base}/v1/orders")
        assert denied.status_code == 401
        assert denied.headers["content-type"] == "application/problem+json"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert created.secret not in _output(proc)


def _output(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        return ""
    assert proc.stdout is not None
    return proc.stdout.read()
