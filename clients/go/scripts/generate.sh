#!/usr/bin/env bash
# Regenerates clients/go/gen from proto/ with buf and two local plugins at
# pinned versions, installed into clients/go/.bin (gitignored) by `go install`.
# protoc-gen-go is pinned to the same version as the google.golang.org/protobuf
# runtime in go.mod, so generated code and runtime always match.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$here/../.." && pwd)"
PROTOC_GEN_GO_VERSION=v1.36.12     # google.golang.org/protobuf (matches go.mod)
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2  # google.golang.org/grpc/cmd/protoc-gen-go-grpc

bin="$here/.bin"
mkdir -p "$bin"
# Reinstall only when a plugin is missing or reports another version.
if [[ "$("$bin/protoc-gen-go" --version 2>/dev/null)" != "protoc-gen-go $PROTOC_GEN_GO_VERSION" ]]; then
  GOBIN="$bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
fi
if [[ "$("$bin/protoc-gen-go-grpc" --version 2>/dev/null)" != "protoc-gen-go-grpc ${PROTOC_GEN_GO_GRPC_VERSION#v}" ]]; then
  GOBIN="$bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
fi

cd "$root"
npx --no-install buf generate --template clients/go/buf.gen.yaml
