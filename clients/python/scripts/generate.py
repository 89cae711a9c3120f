"""Regenerates src/tollgate/_gen from the repository's proto/ with grpcio-tools.

Run it with the package's virtualenv (made from pyenv's `python3`), from anywhere:

    clients/python/.venv/bin/python clients/python/scripts/generate.py

It uses the protoc bundled in the pinned grpcio-tools (`python -m grpc_tools.protoc`)
and the mypy-protobuf plugins installed next to the interpreter, so the output depends
only on the pinned versions in pyproject.toml: CI regenerates and fails on any diff.

Outputs, for every proto/tollgate/v1/*.proto:
  *_pb2.py, *_pb2_grpc.py           messages and gRPC stubs (protoc, grpcio-tools)
  *_pb2.pyi, *_pb2_grpc.pyi         typed stubs (mypy-protobuf), incl. async stubs

Import fix-up. protoc writes imports from the proto import path, e.g.
`from tollgate.v1 import common_pb2`. Our import package is *also* called `tollgate`,
and the generated modules live in `tollgate._gen.tollgate.v1`, so those imports would
look for a `tollgate.v1` package that does not exist. We keep protoc's `-I proto` root
(so descriptor file names stay `tollgate/v1/*.proto`, as every other Tollgate client
and the server's reflection name them) and rewrite every *module* reference
`tollgate.v1.<name>_pb2[_grpc]` to `tollgate._gen.tollgate.v1.<name>_pb2[_grpc]`.
Proto names such as "tollgate.v1.Header" or "/tollgate.v1.TollgateService/Authorize"
never end in `_pb2`, so they are left alone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE_ROOT = HERE.parent  # clients/python
REPO = PACKAGE_ROOT.parent.parent
PROTO = REPO / "proto"
OUT = PACKAGE_ROOT / "src" / "tollgate" / "_gen"

# `tollgate.v1.x_pb2` not already preceded by a dot or a word character
# (so `tollgate._gen.tollgate.v1.x_pb2` is not rewritten twice).
MODULE_REF = re.compile(r"(?<![\w.])tollgate\.v1(?=\.\w+_pb2(?:_grpc)?\b|\s+import\b)")
NEW_ROOT = "tollgate._gen.tollgate.v1"

INIT = '"""Generated from proto/ by scripts/generate.py. Do not edit."""\n'


def main() -> int:
    import grpc_tools  # the pinned grpcio-tools of this interpreter

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    bindir = Path(sys.executable).parent
    protos = sorted(str(p.relative_to(PROTO)) for p in (PROTO / "tollgate" / "v1").glob("*.proto"))
    if not protos:
        print(f"generate: no .proto files under {PROTO}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO}",
            f"-I{well_known}",
            f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            f"--mypy_out={tmp}",
            f"--mypy_grpc_out={tmp}",
            *protos,
        ]
        # mypy-protobuf reports each file it writes on stderr: keep the output quiet.
        done = subprocess.run(cmd, cwd=PROTO, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            return done.returncode
        generated = Path(tmp) / "tollgate" / "v1"
        for f in sorted(generated.iterdir()):
            text = f.read_text(encoding="utf-8")
            f.write_text(MODULE_REF.sub(NEW_ROOT, text), encoding="utf-8")
        if OUT.exists():
            shutil.rmtree(OUT)
        target = OUT / "tollgate" / "v1"
        shutil.copytree(generated, target)
    for pkg in (OUT, OUT / "tollgate", OUT / "tollgate" / "v1"):
        (pkg / "__init__.py").write_text(INIT, encoding="utf-8")
    print(f"generate: {len(protos)} protos -> {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
