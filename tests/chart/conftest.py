"""The ``helm`` fixture: the real CLI, or a loud skip naming the script that installs it (CI runs it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chart.helm import INSTALL_HINT, Helm, find_helm


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Helm]:
    binary = find_helm()
    if binary is None:
        pytest.skip(f"SKIPPED LOUDLY: no helm binary; run {INSTALL_HINT} (CI does) or set $HELM")
    home: Path = tmp_path_factory.mktemp("helm-home")
    yield Helm(binary=binary, home=home)
