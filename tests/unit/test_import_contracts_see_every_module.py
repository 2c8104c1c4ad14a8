"""import-linter only sees packages: a test folder without ``__init__.py`` would slip past the contracts that
keep tests and benchmarks apart (pyproject.toml). Every folder of Python files under tests/ and benchmarks/
is therefore a package."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("top", ["tests", "benchmarks"])
def test_every_folder_of_python_files_is_a_package(top: str) -> None:
    folders = {path.parent for path in (ROOT / top).rglob("*.py") if "__pycache__" not in path.parts}
    missing = sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").is_file())
    assert missing == [], f"add an __init__.py to: {missing}"
