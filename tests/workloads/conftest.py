"""Fixtures: the public traces from ``../shared/traces/`` (or $AUTOSCALER_TRACES_DIR), skipped if absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autoscaler.sim.workloads import loaders, trace

_DEFAULT_DIR = Path(__file__).resolve().parents[3] / "shared" / "traces"
TRACES_DIR = Path(os.environ.get("AUTOSCALER_TRACES_DIR", _DEFAULT_DIR))
AZURE = TRACES_DIR / "AzureLLMInferenceTrace_conv.csv"
MOONCAKE = TRACES_DIR / "conversation_trace.jsonl"
SERVEGEN = TRACES_DIR / "servegen"


def _load(path: Path) -> trace.Trace:
    if not path.is_file():
        pytest.skip(
            f"PUBLIC TRACE ABSENT: {path} not found; fetch it with `python simulations/fetch_traces.py` "
            "and point $AUTOSCALER_TRACES_DIR at the folder"
        )
    return loaders.load_trace(path)


@pytest.fixture(scope="session")
def azure_trace() -> trace.Trace:
    return _load(AZURE)


@pytest.fixture(scope="session")
def mooncake_trace() -> trace.Trace:
    return _load(MOONCAKE)


@pytest.fixture(scope="session")
def servegen_dir() -> Path:
    if not SERVEGEN.is_dir():
        pytest.skip(
            f"SERVEGEN HOURS ABSENT: {SERVEGEN} not found; point $AUTOSCALER_TRACES_DIR at the folder"
        )
    return SERVEGEN
