#!/usr/bin/env bash
# Regenerate the committed protobuf/gRPC modules (messages, stubs, and their typed .pyi) from
# externalscaler.proto. Needs the dev extras: grpcio-tools (its bundled protoc) and mypy-protobuf (the
# protoc-gen-mypy plugins, on PATH in the venv). The versions are pinned because the generated code
# records them; tests/contract/keda/test_generated_code.py checks that regenerating gives no diff.
#
# Usage: autoscaler/adapters/keda/regenerate.sh [OUTPUT_ROOT]   (default: the repository root, in place)
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
out="$(mkdir -p "${1:-$root}" && cd "${1:-$root}" && pwd)"
cd "$root"
"${PYTHON:-python}" -m grpc_tools.protoc -I. \
    --python_out="$out" --grpc_python_out="$out" --mypy_out="$out" --mypy_grpc_out="$out" \
    autoscaler/adapters/keda/externalscaler.proto >/dev/null 2>&1
# Generated code follows protoc's style, not ours: ruff is told to skip it (mypy checks it as is), and the
# flake8-pyi codes mypy-protobuf writes in .pyi noqa comments, unknown to ruff, are dropped.
for file in "$out"/autoscaler/adapters/keda/externalscaler_pb2*.py*; do
    { echo '# ruff: noqa'; sed 's/  # noqa: Y015$//' "$file"; } >"$file.tmp"
    mv "$file.tmp" "$file"
done
