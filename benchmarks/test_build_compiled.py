"""The opt-in compiled build: it refuses to run when missing or stale, and where a build exists it gives the
same simulation, to the byte, as the pure-Python modules (the package's default)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import build_compiled as bc
import pytest

# sim_speed's workload (the Azure trace when present, its synthetic stand-in otherwise) with the affinity
# router: whether the hot modules ran compiled, and the digest of everything the run returned.
RUN = """
import sys
sys.path.insert(0, "benchmarks")
if sys.argv[1] == "compiled":
    import build_compiled
    build_compiled.activate()
import numpy as np
import sim_speed
trace = sim_speed.workload(sim_speed.AZURE, np.random.default_rng(0))
print(sim_speed._compiled(), sim_speed.run(trace, policy_name="ours", router="affinity")["digest"])
"""


def _write_manifest(into: Path, digests: dict[str, str]) -> None:
    into.mkdir(parents=True, exist_ok=True)
    (into / bc.MANIFEST).write_text(json.dumps(digests))


@pytest.mark.parametrize(
    ("digests", "message"),
    [
        (None, "no compiled build"),
        ({"autoscaler.routing.index": "0" * 64}, "build is stale (autoscaler.routing.index changed)"),
    ],
    ids=["missing", "stale"],
)
def test_a_missing_or_stale_build_is_refused(
    tmp_path: Path, digests: dict[str, str] | None, message: str
) -> None:
    if digests is not None:
        _write_manifest(tmp_path, digests)
    path_before = list(sys.path)
    with pytest.raises(SystemExit, match=re.escape(message)):
        bc.activate(tmp_path)
    assert sys.path == path_before  # nothing was put in front of the sources


def _fresh_build() -> bool:
    manifest = bc.BUILD / bc.MANIFEST
    if not manifest.is_file():
        return False
    digests: dict[str, str] = json.loads(manifest.read_text())
    return set(digests) == set(bc.HOT) and all(bc._digest(m) == d for m, d in digests.items())


@pytest.mark.timeout(300)
def test_the_compiled_build_simulates_the_same_bytes_as_the_pure_modules() -> None:
    if not _fresh_build():
        pytest.skip(f"no fresh compiled build in {bc.BUILD}: python benchmarks/build_compiled.py makes one")
    answers = {
        mode: subprocess.run(
            [sys.executable, "-c", RUN, mode],
            cwd=bc.REPO,
            check=True,
            capture_output=True,
            text=True,
            timeout=240,
        ).stdout.split()
        for mode in ("pure", "compiled")
    }
    assert answers["pure"][0] == "False" and answers["compiled"][0] == "True"
    assert answers["pure"][1] == answers["compiled"][1]
