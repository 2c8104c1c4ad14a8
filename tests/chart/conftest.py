"""The ``helm`` fixture: the real CLI, or a loud skip naming the script that installs it (CI runs it).

The RBAC test drives the real controller with the controller contract tests' fixtures, shared from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chart.helm import INSTALL_HINT, Helm, find_helm
from tests.contract.controller.conftest import (  # noqa: F401  (fixtures for test_rbac_matches_code)
    api_client,
    board,
    clock,
    kube,
    make_controller,
    prom,
    router_metrics,
)


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Helm]:
    binary = find_helm()
    if binary is None:
        pytest.skip(f"SKIPPED LOUDLY: no helm binary; run {INSTALL_HINT} (CI does) or set $HELM")
    home: Path = tmp_path_factory.mktemp("helm-home")
    yield Helm(binary=binary, home=home)
