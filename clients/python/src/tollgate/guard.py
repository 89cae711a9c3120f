"""The middleware's decisions, framework-neutral: the ASGI and Flask adapters only move
bytes. One `Guard` per middleware, configured once.

Per request: a skipped path (exact `skip`, `skip_prefixes`, or a route with `skip=True`)
bypasses Tollgate. Otherwise Authorize is called with the key from the configured header,
the method, the path (no query), the client IP (the socket peer, or X-Forwarded-For
counted back over trusted proxies only) and `apply_limits=True`, plus the route's
`endpoint` and extra `scopes`. The decision becomes a `Verdict`:

| outcome | answer |
| --- | --- |
| allowed | the request goes on with a TollgateState; the decision's headers (RateLimit-Policy, RateLimit) are added to the response |
| denied | `http_status` of the decision, every header of `response_headers` (WWW-Authenticate, Retry-After, RateLimit…), an RFC 9457 problem+json body |
| unreachable (UNAVAILABLE, deadline, breaker open) | `fail_mode="closed"`: 503 problem+json; `"open"`: the request goes on with `TollgateState(identity=None, decided="fail-open")` |
| INVALID_ARGUMENT or another error | 500 problem+json and an error log line naming the fields (never a value) |

A method or path beyond Authorize's bounds, which the *caller* controls, is answered here
without a call (a method over 16 bytes: 400; a path over 2048 bytes: 414), so a hostile
request cannot turn into a 500. (An over-long key is no such case: Tollgate answers it
as a malformed key, 401, and records the failure.)
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Literal

from tollgate._gen.tollgate.v1.common_pb2 import Reason
from tollgate._gen.tollgate.v1.tollgate_service_pb2 import AuthorizeRequest, AuthorizeResponse
from tollgate._gen.tollgate.v1.usage_report_pb2 import ReportUsageRequest
from tollgate.errors import TollgateError
from tollgate.routes import RouteOptions
from tollgate.state import TollgateState

log = logging.getLogger("tollgate")

FailMode = Literal["closed", "open"]

QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"
PROBLEM_JSON = "application/problem+json"

# Authorize's bounds on request-derived input (proto/tollgate/v1/tollgate_service.proto).
MAX_METHOD_BYTES = 16
MAX_PATH_BYTES = 2048

# The caller is told the same for every bad key (as the server's Envoy door does):
# saying "revoked" or "expired" would confirm to the holder of a leaked key that it was real.
_BAD_KEY = frozenset({"MALFORMED_KEY", "UNKNOWN_KEY", "EXPIRED_KEY", "REVOKED_KEY"})


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the adapter does with one request.

    `state` set: the request goes on, with `headers` added to its response. Otherwise
    the adapter answers `status` with `headers` and `body` itself.
    """

    state: TollgateState | None
    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def proceed(self) -> bool:
        """True if the request goes on to the handler."""
        return self.state is not None


def public_reason(reason: Reason.ValueType) -> str:
    """The caller-facing reason code: e.g. ``rate_limited``; ``invalid_key`` for any bad key."""
    name = Reason.Name(reason).removeprefix("REASON_") if reason in Reason.values() else "UNKNOWN"
    return "invalid_key" if name in _BAD_KEY else name.lower()


def problem(
    status: int,
    detail: str,
    reason: str,
    *,
    decision_id: str = "",
    headers: Sequence[tuple[str, str]] = (),
) -> Verdict:
    """An RFC 9457 problem+json answer."""
    if status == 429:
        type_, title = QUOTA_EXCEEDED, "Quota exceeded"
    else:
        type_ = "about:blank"
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "Error"
    body: dict[str, object] = {"type": type_, "title": title, "status": status, "detail": detail}
    if decision_id:
        body["decision_id"] = decision_id
    body["reason"] = reason
    out = [(n.lower(), v) for n, v in headers if n.lower() != "content-type"]
    out.append(("content-type", PROBLEM_JSON))
    return Verdict(None, status, out, json.dumps(body, separators=(",", ":")).encode())


def _parse_ip(text: str) -> str | None:
    t = text.strip()
    if t.startswith("[") and "]" in t:  # [v6]:port
        t = t[1 : t.index("]")]
    elif t.count(":") == 1:  # v4:port
        t = t.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(t))
    except ValueError:
        return None


class ProxyTrust:
    """Which X-Forwarded-For hops are believed. Nothing by default.

    `trusted` is a number of proxies in front of the app (1: the peer is a proxy, the
    client is the last X-Forwarded-For entry), or a list of proxy networks (CIDR or
    address): walking back from the peer, each hop from a trusted network is replaced
    by the entry it appended, until an untrusted address — that is the client.
    """

    def __init__(self, trusted: int | Sequence[str] = 0) -> None:
        if isinstance(trusted, (bool, str)):
            raise TypeError("trusted_proxies is a number of hops or a list of networks")
        self.hops = 0
        self.networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
        if isinstance(trusted, int):
            if trusted < 0:
                raise ValueError("trusted_proxies must not be negative")
            self.hops = trusted
        else:
            self.networks = tuple(ipaddress.ip_network(n, strict=False) for n in trusted)

    def _trusted(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        return any(addr.version == n.version and addr in n for n in self.networks)

    def client_ip(self, peer: str | None, forwarded: Sequence[str] = ()) -> str:
        """The client IP for a socket `peer` and the X-Forwarded-For header values."""
        addr = _parse_ip(peer) if peer else None
        if addr is None:
            return ""
        if not self.hops and not self.networks:
            return addr
        chain = [e for value in reversed(forwarded) for e in reversed(value.split(","))]
        chain = [e for e in chain if e.strip()]
        for i, entry in enumerate(chain):
            if self.hops and i >= self.hops:
                break
            if self.networks and not self._trusted(addr):
                break
            hop = _parse_ip(entry)
            if hop is None:  # garbage in the header: stop at the last address we can name
                break
            addr = hop
        return addr


class Guard:
    """One middleware's configuration and decisions (see the module docstring)."""

    def __init__(
        self,
        *,
        header: str = "x-api-key",
        trusted_proxies: int | Sequence[str] = 0,
        skip: Sequence[str] = (),
        skip_prefixes: Sequence[str] = (),
        fail_mode: FailMode = "closed",
        endpoint: str | None = None,
        scopes: Sequence[str] = (),
        apply_limits: bool = True,
    ) -> None:
        if fail_mode not in ("closed", "open"):
            raise ValueError('fail_mode must be "closed" or "open"')
        for name, value in (("skip", skip), ("skip_prefixes", skip_prefixes), ("scopes", scopes)):
            if isinstance(value, str):
                raise TypeError(f"{name} must be a list of strings, not a string")
        self.header = header.lower()
        self.proxies = ProxyTrust(trusted_proxies)
        self.skip = frozenset(skip)
        self.skip_prefixes = tuple(skip_prefixes)
        self.fail_mode: FailMode = fail_mode
        self.endpoint = endpoint
        self.scopes = tuple(scopes)
        self.apply_limits = apply_limits

    def skipped(self, path: str, route: RouteOptions | None) -> bool:
        """True if this request bypasses Tollgate."""
        if route is not None and route.skip:
            return True
        return path in self.skip or any(path.startswith(p) for p in self.skip_prefixes)

    def precheck(self, method: str, path: str) -> Verdict | None:
        """A local answer for caller input beyond Authorize's bounds, else None."""
        if len(method.encode()) > MAX_METHOD_BYTES:
            return problem(400, "request method too long", "bad_request")
        if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
            return problem(414, "request path too long", "uri_too_long")
        return None

    def request(
        self,
        *,
        key: str,
        method: str,
        path: str,
        peer: str | None,
        forwarded: Sequence[str],
        route: RouteOptions | None,
    ) -> AuthorizeRequest:
        """The Authorize request for one HTTP request."""
        endpoint = (route.endpoint if route and route.endpoint else self.endpoint) or ""
        scopes = list(dict.fromkeys(self.scopes + (route.scopes if route else ())))
        return AuthorizeRequest(
            api_key=key,
            method=method.upper(),
            path=path,
            client_ip=self.proxies.client_ip(peer, forwarded),
            required_scopes=scopes,
            apply_limits=self.apply_limits,
            endpoint=endpoint,
        )

    def on_decision(self, resp: AuthorizeResponse) -> Verdict:
        """The verdict for an Authorize answer (allowed or denied)."""
        headers = [(h.name.lower(), h.value) for h in resp.response_headers]
        if resp.allowed:
            state = TollgateState(
                resp.identity if resp.HasField("identity") else None, resp, "tollgate"
            )
            return Verdict(state, 0, headers)
        status = resp.http_status or 403
        return problem(
            status,
            resp.message or HTTPStatus(status).phrase,
            public_reason(resp.reason),
            decision_id=resp.decision_id,
            headers=headers,
        )

    def report_request(
        self, authorize: AuthorizeRequest, decision: AuthorizeResponse, seq: int, cost: int
    ) -> ReportUsageRequest:
        """The ReportUsage request for the `seq`-th report of an allowed request: its own key
        (so no management token is needed), endpoint (or method and path) and client IP."""
        where = (
            {"endpoint": decision.endpoint}
            if decision.endpoint
            else {"method": authorize.method, "path": authorize.path}
        )
        return ReportUsageRequest(
            id=f"{decision.decision_id}.{seq}",
            api_key=authorize.api_key,
            client_ip=authorize.client_ip,
            cost=cost,
            **where,
        )

    def on_error(self, err: TollgateError) -> Verdict:
        """The verdict when Authorize failed."""
        if err.unavailable:
            log.warning("tollgate unreachable (%s); failing %s", err.code.name, self.fail_mode)
            if self.fail_mode == "open":
                return Verdict(TollgateState(None, None, "fail-open"))
            return problem(503, "the authorization service is unavailable", "unavailable")
        fields = "; ".join(f"{v.field}: {v.description}" for v in err.field_violations)
        log.error(
            "tollgate Authorize failed with %s (%s); answering 500",
            err.code.name,
            fields or err.details,
        )
        return problem(500, "the request could not be authorized", "authorization_error")
