"""The committed protobuf/gRPC modules are exactly what regenerate.sh makes from externalscaler.proto."""

from __future__ import annotations

import filecmp
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
KEDA = Path("autoscaler/adapters/keda")
GENERATED = (
    "externalscaler_pb2.py",
    "externalscaler_pb2.pyi",
    "externalscaler_pb2_grpc.py",
    "externalscaler_pb2_grpc.pyi",
)


def test_regenerating_gives_no_diff(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    plugin = shutil.which("protoc-gen-mypy", path=bin_dir)
    if importlib.util.find_spec("grpc_tools") is None or plugin is None:
        pytest.skip("needs the dev extras grpcio-tools and mypy-protobuf")
    env = {**os.environ, "PYTHON": sys.executable, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([str(ROOT / KEDA / "regenerate.sh"), str(tmp_path)], check=True, env=env, timeout=60)
    for name in GENERATED:
        fresh, committed = tmp_path / KEDA / name, ROOT / KEDA / name
        assert filecmp.cmp(fresh, committed, shallow=False), f"{committed} is stale: run {KEDA}/regenerate.sh"
