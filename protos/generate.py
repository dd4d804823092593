"""Regenerate perfprobe's protobuf/gRPC modules from the .proto files in this folder.

The generated modules are committed so that installing perfprobe needs no protoc; a test
regenerates them into a temporary folder and diffs, so they cannot drift from the protos.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
PACKAGE_DIR = PROTO_DIR.parent / "perfprobe" / "client" / "_proto"
PROTO_FILES = ("grpc_service.proto", "model_config.proto", "health.proto")


def generate(out_dir: Path) -> list[Path]:
    """Run protoc (from grpcio-tools) and make sibling imports package-relative."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(PROTO_DIR / name) for name in PROTO_FILES],
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    written = sorted(out_dir.glob("*_pb2*.py"))
    for path in written:
        text = path.read_text()
        text = re.sub(r"^import (\w+_pb2) as", r"from . import \1 as", text, flags=re.M)
        path.write_text(text)
    return written


def main() -> int:
    """Write the generated modules into the package."""
    PACKAGE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for path in generate(Path(tmp)):
            (PACKAGE_DIR / path.name).write_text(path.read_text())
            print(f"wrote {PACKAGE_DIR / path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
