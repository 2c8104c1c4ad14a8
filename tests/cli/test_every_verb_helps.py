"""Every verb's ``--help``: its options with every extra installed; with only the README's ``.[sim]``, its
options or one line naming the extra it needs (never a traceback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autoscaler.cli.main import VERBS, main
from tests.cli.test_profile_derive import QWEN3_14B

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


def _sim_only(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SIM_ONLY, *argv], capture_output=True, text=True, timeout=60)


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
    done = _sim_only([verb, "--help"])
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


def test_profile_derive_runs_with_only_the_sim_extra_and_measuring_names_the_router_extra(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(QWEN3_14B))
    out = tmp_path / "derived.yaml"
    derive = ["profile", "derive", "--config", str(config), "--gpu", "h100", "--out", str(out)]
    done = _sim_only(derive)
    assert done.returncode == 0, done.stderr
    assert out.exists()
    measure = ["profile", "--endpoint", "http://127.0.0.1:9", "--accelerator", "cpu"]
    measure += ["--max-num-seqs", "4", "--max-num-batched-tokens", "1024"]
    done = _sim_only(measure)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "inference-autoscaler[router]" in done.stderr, done.stderr
