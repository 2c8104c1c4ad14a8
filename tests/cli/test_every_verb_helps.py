"""Every verb's ``--help``: its options with every extra installed; with only the README's ``.[sim]``, its
options or one line naming the extra it needs (never a traceback)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from autoscaler.cli.main import VERBS, main

# Import roots of what only the router, controller and dev extras install (pyproject.toml).
NOT_IN_SIM = (
    "aiohttp",
    "uvloop",
    "starlette",
    "uvicorn",
    "httpx",
    "sniffio",
    "msgspec",
    "zmq",
    "cbor2",
    "prometheus_client",
    "grpc",
    "google.protobuf",
    "xds_protos",
    "envoy",
    "kubernetes",
    "prometheus_api_client",
    "apscheduler",
)

# Runs the CLI with those packages made unimportable, as in a virtualenv with only `pip install -e ".[sim]"`.
SIM_ONLY = f"""
import importlib.abc, sys
BLOCKED = {NOT_IN_SIM!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Block())
from autoscaler.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_help_lists_the_options_with_every_extra_installed(
    verb: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([verb, "--help"])
    assert exited.value.code == 0
    assert "--" in capsys.readouterr().out


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_help_with_only_the_sim_extra_helps_or_names_the_extra(verb: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SIM_ONLY, verb, "--help"], capture_output=True, text=True, timeout=60
    )
    extra = VERBS[verb].extra
    if done.returncode == 0:
        assert f"usage: autoscaler {verb}" in done.stdout
        assert extra in (None, "sim") or verb == "router", f"{verb} imports nothing of [{extra}]?"
    else:
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert f"inference-autoscaler[{extra}]" in done.stderr


def test_a_missing_dependency_names_the_extra_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing(name: str) -> None:
        raise ModuleNotFoundError("No module named 'kubernetes'", name="kubernetes")

    monkeypatch.setattr("importlib.import_module", missing)
    assert main(["controller", "--help"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'inference-autoscaler[controller]'" in err
