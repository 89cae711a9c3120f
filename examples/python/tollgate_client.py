#!/usr/bin/python3
"""A minimal Python client of Tollgate's TollgateService over gRPC (grpcio).

Message classes are built at run time from a descriptor set of proto/tollgate/v1,
so no protoc plugin is needed:

    npx buf build -o tollgate.binpb          # in the Tollgate repository
    /usr/bin/python3 examples/python/tollgate_client.py tollgate.binpb 127.0.0.1:50051 tg_live_...

(Debian: apt-get install python3-grpcio.)
"""
import sys

import grpc
from google.protobuf import descriptor_pb2, json_format, message_factory


class Tollgate:
    """Calls TollgateService RPCs; each method takes and returns proto messages."""

    def __init__(self, descriptor_set: str, address: str):
        fds = descriptor_pb2.FileDescriptorSet()
        with open(descriptor_set, "rb") as f:
            fds.ParseFromString(f.read())
        self.m = message_factory.GetMessages(list(fds.file))
        self.channel = grpc.insecure_channel(address)

    def _call(self, method: str, request, timeout: float = 0.2):
        out = self.m[f"tollgate.v1.{method}Response"]
        rpc = self.channel.unary_unary(
            f"/tollgate.v1.TollgateService/{method}",
            request_serializer=lambda msg: msg.SerializeToString(),
            response_deserializer=out.FromString,
        )
        return rpc(request, timeout=timeout)

    def authorize(self, api_key: str, method: str, path: str, client_ip: str = "", apply_limits: bool = False):
        req = self.m["tollgate.v1.AuthorizeRequest"](
            api_key=api_key, method=method, path=path, client_ip=client_ip, apply_limits=apply_limits
        )
        return self._call("Authorize", req)

    def check_rate_limit(self, key_id: str, endpoint: str = "", cost: int = 0):
        req = self.m["tollgate.v1.CheckRateLimitRequest"](key_id=key_id, endpoint=endpoint, cost=cost)
        return self._call("CheckRateLimit", req)

    def rotate_key(self, current_secret: str):
        return self._call("RotateKey", self.m["tollgate.v1.RotateKeyRequest"](current_secret=current_secret))


if __name__ == "__main__":
    descriptor_set, address, api_key = sys.argv[1:4]
    client = Tollgate(descriptor_set, address)
    decision = client.authorize(api_key, "GET", "/v1/orders", "203.0.113.9", apply_limits=True)
    # A denial is data: send decision.http_status and decision.response_headers to the caller.
    print(json_format.MessageToJson(decision))
