"""A stand-in gRPC server that counts the attempts reaching it and fails on demand.

It serves tollgate.v1's two services on 127.0.0.1:0 with the generated servicer
classes: while `failing` is set every call is answered UNAVAILABLE (as Tollgate does
when its store is down and the endpoint fails closed); otherwise with an empty OK
response. `calls[rpc]` counts what arrived, so retries are counted on the wire.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent import futures
from typing import Any

import grpc

from tollgate._core import RPCS, STREAM_RPCS
from tollgate._gen.tollgate.v1 import (
    key_service_pb2,
    key_service_pb2_grpc,
    live_pb2,
    override_pb2,
    tollgate_service_pb2,
    tollgate_service_pb2_grpc,
    usage_report_pb2,
)


class StubTollgate:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.failing = True
        self.delay = 0.0
        self.metadata: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        for rpc, service in RPCS.items():
            module = tollgate_service_pb2 if service == "TollgateService" else key_service_pb2
            if rpc in STREAM_RPCS:
                module = live_pb2
            if rpc == "ReportUsage":
                module = usage_report_pb2
            if rpc.endswith(("LimitOverride", "LimitOverrides")):
                module = override_pb2
            self._handler(rpc, getattr(module, f"{rpc}Response"), stream=rpc in STREAM_RPCS)
        tollgate_service_pb2_grpc.add_TollgateServiceServicer_to_server(self, self.server)  # type: ignore[arg-type]
        key_service_pb2_grpc.add_KeyServiceServicer_to_server(self, self.server)  # type: ignore[arg-type]
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _handler(self, rpc: str, response: Any, stream: bool = False) -> None:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            with self._lock:
                self.calls[rpc] += 1
                self.metadata.append(dict(context.invocation_metadata()))  # type: ignore[arg-type]
            if self.delay:
                time.sleep(self.delay)
            if self.failing:
                context.abort(grpc.StatusCode.UNAVAILABLE, "store unreachable")
            # A stream answers one empty message, then ends.
            return iter([response()]) if stream else response()

        setattr(self, rpc, handle)

    def stop(self) -> None:
        self.server.stop(grace=None).wait(5)
