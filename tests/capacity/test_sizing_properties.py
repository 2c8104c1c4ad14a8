"""Properties of the sizing: monotone in load and SLO, utilisation below 1, zero load gives the minimum."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.capacity import decode
from autoscaler.capacity import plan as planning
from autoscaler.capacity.load import Load
from autoscaler.config.profiles import load_profile
from autoscaler.core.phases import ServingMode
from autoscaler.core.slo import LatencyTarget, Slo
from autoscaler.profiles.schema import Profile

PROFILES = ("llama-3.1-8b/h100-tp1", "llama-3.1-70b/h100-tp4", "qwen3-32b/h100-tp2")


@functools.cache
def profile(name: str) -> Profile:
    return load_profile(name)


loads = st.fixed_dictionaries(
    {
        "rate": st.floats(0.01, 300.0),
        "prompt_tokens": st.floats(16.0, 16_000.0),
        "output_tokens": st.floats(4.0, 2_000.0),
        "prefix_hit_rate": st.floats(0.0, 0.9),
        "prompt_cv": st.floats(0.0, 2.0),
        "arrival_cv": st.floats(0.0, 3.0),
    }
)
slos = st.tuples(st.floats(0.5, 30.0), st.floats(0.02, 0.3))


def sized(name: str, load: dict[str, float], slo: tuple[float, float], mode: ServingMode) -> dict[str, float]:
    result = planning.size_pool(
        profile(name), Load.of(**load), Slo(LatencyTarget(slo[0]), LatencyTarget(slo[1])), mode
    )
    return {phase.value: float(s.replicas[()]) for phase, s in result.items()}


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(PROFILES),
    load=loads,
    slo=slos,
    factor=st.floats(1.0, 5.0),
    mode=st.sampled_from(list(ServingMode)),
)
def test_more_load_never_needs_fewer_replicas(
    name: str, load: dict[str, float], slo: tuple[float, float], factor: float, mode: ServingMode
) -> None:
    before = sized(name, load, slo, mode)
    after = sized(name, {**load, "rate": load["rate"] * factor}, slo, mode)
    assert all(after[phase] >= before[phase] for phase in before)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(PROFILES),
    load=loads,
    slo=slos,
    tighten=st.floats(0.3, 1.0),
    mode=st.sampled_from(list(ServingMode)),
)
def test_tighter_slo_never_needs_fewer_replicas(
    name: str, load: dict[str, float], slo: tuple[float, float], tighten: float, mode: ServingMode
) -> None:
    before = sized(name, load, slo, mode)
    for tighter in ((slo[0] * tighten, slo[1]), (slo[0], slo[1] * tighten)):
        after = sized(name, load, tighter, mode)
        assert all(after[phase] >= before[phase] for phase in before)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(PROFILES), load=loads, slo=slos, mode=st.sampled_from(list(ServingMode)))
def test_utilisation_of_the_answer_stays_below_one(
    name: str, load: dict[str, float], slo: tuple[float, float], mode: ServingMode
) -> None:
    result = planning.size_pool(
        profile(name), Load.of(**load), Slo(LatencyTarget(slo[0]), LatencyTarget(slo[1])), mode
    )
    for sizing in result.values():
        if np.isfinite(sizing.replicas[()]):
            assert 0.0 <= sizing.utilisation[()] < 1.0


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(PROFILES),
    load=loads,
    mode=st.sampled_from(list(ServingMode)),
    floor=st.integers(0, 3),
)
def test_zero_load_gives_the_minimum(
    name: str, load: dict[str, float], mode: ServingMode, floor: int
) -> None:
    slo = Slo(LatencyTarget(30.0), LatencyTarget(0.3))
    result = planning.plan(profile(name), Load.of(**{**load, "rate": 0.0}), slo, mode, min_replicas=floor)
    assert all(p.replicas == floor for p in result.phases.values())


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(PROFILES), load=loads, slo=slos)
def test_decode_answer_meets_its_own_itl_prediction(
    name: str, load: dict[str, float], slo: tuple[float, float]
) -> None:
    """The replicas ``size`` picks are ones at which ``itl`` (the same batch model) meets the target."""
    target = LatencyTarget(slo[1])
    sizing = decode.size(profile(name), Load.of(**load), target)
    if np.isfinite(sizing.replicas[()]) and sizing.replicas[()] > 0:
        assert sizing.itl_s[()] <= target.seconds * (1 + 1e-9)


@given(cap=st.floats(0.0, 1e4), quantile=st.floats(0.5, 0.999))
def test_largest_mean_batch_inverts_the_batch_quantile(cap: float, quantile: float) -> None:
    n = decode.largest_mean_batch(np.asarray(cap), quantile)
    assert float(decode.batch_quantile(n, quantile)) == pytest.approx(cap, abs=1e-6 * max(cap, 1.0))
