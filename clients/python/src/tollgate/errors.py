"""Errors raised by the Tollgate clients.

A denial is never an error: Authorize and CheckRateLimit return `allowed=False` in an
OK response. An exception means the call itself failed:

- `TollgateUnavailableError` — Tollgate could not answer: UNAVAILABLE, DEADLINE_EXCEEDED,
  or the client's circuit breaker is open (`CircuitOpenError`). Middleware applies its
  fail mode to these.
- `TollgateError` — any other gRPC status (INVALID_ARGUMENT with `field_violations`,
  UNAUTHENTICATED for the management token, NOT_FOUND, FAILED_PRECONDITION, …).

Messages never contain an API key or the management token: they are built from the
server's status message (which names fields and bounds, never values) and are redacted
again here, defensively, for anything shaped like a Tollgate secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2

# A Tollgate secret: `tg_<env>_<base62>` (see README "Keys").
_SECRET = re.compile(r"tg_[a-z0-9]{1,16}_[A-Za-z0-9]{8,}")
_UNAVAILABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def redact(text: str, *secrets: str) -> str:
    """`text` with every Tollgate-shaped secret and each of `secrets` replaced."""
    for s in secrets:
        if s:
            text = text.replace(s, "[redacted]")
    return _SECRET.sub("tg_[redacted]", text)


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field of an INVALID_ARGUMENT error: its proto path and the bound it broke."""

    field: str
    description: str


class TollgateError(Exception):
    """A Tollgate RPC failed with a non-OK gRPC status.

    Attributes:
        code: the gRPC status code.
        method: the RPC, e.g. ``"tollgate.v1.TollgateService/Authorize"``.
        details: the server's status message (redacted).
        field_violations: for INVALID_ARGUMENT, each bad field (google.rpc.BadRequest).
    """

    code: grpc.StatusCode
    method: str
    details: str
    field_violations: tuple[FieldViolation, ...]

    def __init__(
        self,
        code: grpc.StatusCode,
        method: str,
        details: str,
        field_violations: tuple[FieldViolation, ...] = (),
    ) -> None:
        self.code = code
        self.method = method
        self.details = redact(details)
        self.field_violations = field_violations
        super().__init__(f"{method}: {code.name}: {self.details}")

    @property
    def unavailable(self) -> bool:
        """True when Tollgate could not answer (UNAVAILABLE, DEADLINE_EXCEEDED, breaker open)."""
        return self.code in _UNAVAILABLE_CODES


class TollgateUnavailableError(TollgateError):
    """Tollgate could not answer: UNAVAILABLE, DEADLINE_EXCEEDED or an open breaker."""


class CircuitOpenError(TollgateUnavailableError):
    """The client's circuit breaker is open: the call failed fast without reaching Tollgate."""

    def __init__(self, method: str) -> None:
        super().__init__(
            grpc.StatusCode.UNAVAILABLE,
            method,
            "circuit breaker open: Tollgate recently unreachable",
        )


def _violations(err: grpc.RpcError) -> tuple[FieldViolation, ...]:
    """The google.rpc.BadRequest field violations in the `grpc-status-details-bin` trailer."""
    trailers = getattr(err, "trailing_metadata", None)
    md = trailers() if callable(trailers) else None
    for key, value in md or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except Exception:  # a malformed trailer must not mask the real error
            return ()
        out: list[FieldViolation] = []
        for detail in status.details:
            bad = error_details_pb2.BadRequest()
            if detail.Unpack(bad):
                out.extend(FieldViolation(v.field, v.description) for v in bad.field_violations)
        return tuple(out)
    return ()


def from_rpc_error(err: grpc.RpcError, method: str, *secrets: str) -> TollgateError:
    """Converts a grpc error (sync or aio) into a TollgateError (never leaking `secrets`)."""
    code_fn = getattr(err, "code", None)
    code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
    details_fn = getattr(err, "details", None)
    details = (details_fn() if callable(details_fn) else "") or ""
    details = redact(details, *secrets)
    cls = TollgateUnavailableError if code in _UNAVAILABLE_CODES else TollgateError
    return cls(code, method, details, _violations(err))
