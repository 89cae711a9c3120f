"""Starts the repository's built Tollgate (`node dist/cli/main.js serve`) for tests.

Ports are chosen by the OS (127.0.0.1:0) and read from the `"msg":"tollgate serving"`
JSON log line on stdout. Embedded store, no management token unless given.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
MAIN = REPO / "dist" / "cli" / "main.js"
POLICY = Path(__file__).resolve().parent / "fixtures" / "policy.yaml"


class MissingBuild(RuntimeError):
    pass


@dataclass
class TollgateServer:
    """A running Tollgate process."""

    proc: subprocess.Popen[str]
    port: int
    http_port: int
    admin_port: int
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_server(
    *, port: int = 0, token: str | None = None, env: dict[str, str] | None = None
) -> TollgateServer:
    """Starts Tollgate and waits (≤ 20 s) until it serves."""
    if not MAIN.exists():
        raise MissingBuild(
            f"{MAIN} is missing: build the server first with `npm run build` at {REPO}"
        )
    node = shutil.which("node")
    if node is None:
        raise MissingBuild("node is not on PATH: the tests run the built Tollgate server")
    full = {k: v for k, v in os.environ.items() if not k.startswith(("TOLLGATE_", "REDIS_"))}
    full.update(
        TOLLGATE_ADDR=f"127.0.0.1:{port}",
        TOLLGATE_HTTP_ADDR="127.0.0.1:0",
        TOLLGATE_ADMIN_ADDR="127.0.0.1:0",
        TOLLGATE_LOG_LEVEL="info",
        TOLLGATE_POLICY_FILE=str(POLICY),
    )
    if token:
        full["TOLLGATE_MANAGEMENT_TOKEN"] = token
    full.update(env or {})
    proc = subprocess.Popen(
        [node, str(MAIN), "serve"],
        cwd=REPO,
        env=full,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()
    ports: dict[str, int] = {}

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if not ready.is_set() and '"tollgate serving"' in line:
                try:
                    rec = json.loads(line)
                    ports.update(port=rec["port"], http=rec["httpPort"], admin=rec["adminPort"])
                except (ValueError, KeyError):
                    continue
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 20
    while not ready.wait(0.05):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("Tollgate did not start:\n" + "".join(lines[-20:]))
    return TollgateServer(proc, ports["port"], ports["http"], ports["admin"], lines)
