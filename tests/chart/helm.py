"""The real Helm CLI for the chart tests: found, run with a throwaway HOME, its output parsed.

``tests/chart/install_helm.sh`` puts the pinned binary at ``.tools/helm/helm`` (CI runs it); ``$HELM`` or a
``helm`` on ``PATH`` also do. Helm's config, cache and data go under a temporary directory so that the tests
neither read nor write the user's.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts/inference-autoscaler"
EXAMPLES = CHART / "examples"
CRD = CHART / "crds/inferenceautoscalers.yaml"
RELEASE, NAMESPACE = "inference-autoscaler", "autoscaler-system"
KUBERNETES_VERSIONS = ("1.29.0", "1.35.0")  # oldest supported and newest target
INSTALL_HINT = "tests/chart/install_helm.sh"


def find_helm() -> Path | None:
    for candidate in (os.environ.get("HELM"), ROOT / ".tools/helm/helm", shutil.which("helm")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class Helm:
    binary: Path
    home: Path  # HOME and XDG_* for helm

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / "config"),
            "XDG_CACHE_HOME": str(self.home / "cache"),
            "XDG_DATA_HOME": str(self.home / "data"),
            "HELM_NO_PLUGINS": "1",
        }
        return subprocess.run(
            [str(self.binary), *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    def lint(
        self, values: Path | None = None, *, kube_version: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        args = ["lint", "--strict", str(CHART), "--namespace", NAMESPACE]
        if values is not None:
            args += ["--values", str(values)]
        if kube_version is not None:
            args += ["--kube-version", kube_version]
        return self.run(*args)

    def template(
        self, values: Path | None = None, *, kube_version: str, api_versions: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """Every object the chart renders (its CRD included), in order; fails the test on a helm error."""
        args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--include-crds"]
        args += ["--kube-version", kube_version]
        if values is not None:
            args += ["--values", str(values)]
        for api in api_versions:
            args += ["--api-versions", api]
        done = self.run(*args)
        if done.returncode != 0:
            raise AssertionError(f"helm template failed ({' '.join(args[3:])}):\n{done.stderr}")
        return [doc for doc in yaml.safe_load_all(done.stdout) if doc]
