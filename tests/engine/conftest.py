"""Builders for engine tests: the shipped Llama-3.1-8B/H100 profile, optionally with a small KV cache."""

from __future__ import annotations

import pytest

from autoscaler.config.profiles import load_profile
from autoscaler.profiles.schema import Profile


@pytest.fixture(scope="session")
def profile() -> Profile:
    return load_profile("llama-3.1-8b/h100-tp1")
