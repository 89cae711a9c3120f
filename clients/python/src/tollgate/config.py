"""Where a client talks to and with which management token, like the `tollgate` CLI.

| setting | environment | default |
| --- | --- | --- |
| `server` | `TOLLGATE_SERVER` | `http://127.0.0.1:50051` (an http or https URL of the main port) |
| `management_token` | `TOLLGATE_MANAGEMENT_TOKEN_FILE` (file contents, trimmed), else `TOLLGATE_MANAGEMENT_TOKEN` | none (dev mode) |

Explicit arguments override the environment. The token is sent as
`authorization: Bearer <token>` on KeyService RPCs and on RotateKey by key id only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_SERVER = "http://127.0.0.1:50051"

DEFAULT_TIMEOUT = 0.2
"""Seconds: deadline of a TollgateService call (Authorize, CheckRateLimit, …), retries included."""

DEFAULT_MANAGEMENT_TIMEOUT = 2.0
"""Seconds: deadline of a KeyService call, retries included (but the bulk ones below)."""

DEFAULT_BULK_TIMEOUT = 30.0
"""Seconds: deadline of an ExportKeys call (one page) or ImportKeys call (one batch)."""

BULK_RPCS = frozenset({"ExportKeys", "ImportKeys"})
"""The KeyService RPCs that get the bulk deadline instead of the management one."""

# A sidecar on loopback comes back within a second: reconnect quickly instead of
# gRPC's default backoff (1 s growing to 120 s), which would keep failing calls long
# after Tollgate restarted. Built-in retries stay off: the client retries itself.
DEFAULT_CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.enable_retries", 0),
)


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed server URL: the gRPC target `host:port` and whether to use TLS."""

    address: str
    tls: bool


def parse_server(url: str) -> Target:
    """`http://host:port` → plaintext h2c, `https://host:port` → TLS (port 80/443 if absent)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"Tollgate server must be an http(s) URL like {DEFAULT_SERVER}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("Tollgate server URL must not have a path, query or fragment")
    if parts.username or parts.password:
        raise ValueError("Tollgate server URL must not carry credentials")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return Target(f"{host}:{port}", tls)


def resolve_server(server: str | None) -> str:
    """The explicit server, else $TOLLGATE_SERVER, else the default."""
    return server or os.environ.get("TOLLGATE_SERVER") or DEFAULT_SERVER


def resolve_token(token: str | None, token_file: str | os.PathLike[str] | None) -> str:
    """The explicit token or token file, else $TOLLGATE_MANAGEMENT_TOKEN_FILE, else
    $TOLLGATE_MANAGEMENT_TOKEN, else "" (no token: dev mode)."""
    if token is not None:
        return token.strip()
    f = token_file or os.environ.get("TOLLGATE_MANAGEMENT_TOKEN_FILE")
    if f:
        return Path(f).read_text(encoding="utf-8").strip()
    return os.environ.get("TOLLGATE_MANAGEMENT_TOKEN", "").strip()
