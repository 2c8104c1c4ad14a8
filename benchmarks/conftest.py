"""The benchmarks' own tests (``test_*.py`` here) import benchmark modules as the scripts do, as siblings:
this folder goes on ``sys.path``. Nothing under tests/ imports a benchmark (an import-linter contract)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
