"""The package docstring's layer list is the import-linter contract's, so a reader is not misled."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import autoscaler

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_package_docstring_lists_the_contracts_layers_bottom_up() -> None:
    contracts = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    contract = [layer.replace("autoscaler.", "") for layer in reversed(layers)]

    assert autoscaler.__doc__ is not None
    prose = " ".join(autoscaler.__doc__.split())
    listed = re.findall(r"``([a-z |]+)``(?= <| ?\.)", prose)

    assert listed == contract
