"""Builders for simulator tests: a profile, an SLO, settings and tiny traces."""

from __future__ import annotations

import pytest

from autoscaler.config.profiles import load_profile
from autoscaler.core.slo import LatencyTarget, Slo
from autoscaler.profiles.schema import Profile


@pytest.fixture(scope="session")
def profile() -> Profile:
    return load_profile("llama-3.1-8b/h100-tp1")


@pytest.fixture(scope="session")
def slo() -> Slo:
    return Slo(ttft=LatencyTarget(2.0), itl=LatencyTarget(0.05))
