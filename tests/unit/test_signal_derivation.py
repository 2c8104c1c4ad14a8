"""The one definition of every signal: raw families over a window -> PhaseSignals fields."""

from __future__ import annotations

import math

import pytest

from autoscaler.core.families import Histogram, PhaseFamilies
from autoscaler.core.observation import ReplicaCounts
from autoscaler.core.signal_derivation import derive, histogram_quantile, phase_signals
from autoscaler.policy.signals import problem

BOUNDS = (0.1, 0.25, 0.5, 1.0)


def _hist(*per_bucket: float, total: float = 0.0, bounds: tuple[float, ...] = BOUNDS) -> Histogram:
    cumulative, running = [], 0.0
    for n in per_bucket:
        running += n
        cumulative.append(running)
    return Histogram(bounds=bounds, cumulative=tuple(cumulative), total=total)


@pytest.mark.parametrize(
    ("name", "quantile", "histogram", "expected"),
    [
        ("interpolates inside the bucket", 0.5, _hist(0, 10, 0, 0, 0), 0.175),
        ("first bucket starts at zero", 0.5, _hist(10, 0, 0, 0, 0), 0.05),
        ("past the last finite bound reads that bound", 0.99, _hist(0, 0, 0, 1, 9), 1.0),
        ("a rank on a bucket edge reads its bound", 0.5, _hist(5, 5, 0, 0, 0), 0.1),
        ("no observation is no value", 0.9, _hist(0, 0, 0, 0, 0), None),
    ],
)
def test_histogram_quantile_as_prometheus_computes_it(
    name: str, quantile: float, histogram: Histogram, expected: float | None
) -> None:
    got = histogram_quantile(quantile, histogram)
    assert got == (pytest.approx(expected) if expected is not None else None), name


WINDOW = 60.0


@pytest.mark.parametrize(
    ("name", "families", "field", "expected"),
    [
        (
            "rate is the counter's increase per second",
            PhaseFamilies(WINDOW, requests=120.0),
            "arrival_rate",
            2.0,
        ),
        (
            "token mean is sum over count",
            PhaseFamilies(WINDOW, prompt_tokens=_hist(0, 0, 0, 4, 0, total=3.0)),
            "prompt_tokens_mean",
            0.75,
        ),
        (
            "token CV from the buckets: one bucket, uniform over it",
            PhaseFamilies(WINDOW, output_tokens=_hist(0, 0, 0, 4, 0, total=3.0)),
            "output_tokens_cv",
            (0.5 / math.sqrt(12)) / 0.75,
        ),
        (
            "hit rate rounded just above one is one",
            PhaseFamilies(WINDOW, prefix_hit=1.00003, prefix_queried=1.0),
            "prefix_hit_rate",
            1.0,
        ),
        (
            "hit rate rounded just below zero is zero",
            PhaseFamilies(WINDOW, prefix_hit=-1e-5, prefix_queried=1.0),
            "prefix_hit_rate",
            0.0,
        ),
        (
            "a hit rate far out of range is passed on",
            PhaseFamilies(WINDOW, prefix_hit=1.5, prefix_queried=1.0),
            "prefix_hit_rate",
            1.5,
        ),
        (
            "KV use is the mean over reporting replicas",
            PhaseFamilies(WINDOW, replicas=2.0, kv_usage=1.0),
            "kv_usage",
            0.5,
        ),
        (
            "KV per running sequence reads usage x capacity over running",
            PhaseFamilies(WINDOW, replicas=2.0, kv_usage=1.0, running=40.0, kv_capacity_tokens=100_000.0),
            "kv_tokens_per_running",
            2500.0,
        ),
        (
            "running per replica",
            PhaseFamilies(WINDOW, replicas=4.0, running=40.0),
            "running_per_replica",
            10.0,
        ),
        (
            "waiting per replica and in total",
            PhaseFamilies(WINDOW, replicas=4.0, waiting=6.0),
            "waiting_per_replica",
            1.5,
        ),
        (
            "TTFT percentile from buckets",
            PhaseFamilies(WINDOW, ttft=_hist(0, 10, 0, 0, 0)),
            "ttft_observed_s",
            0.235,
        ),
    ],
)
def test_each_field_is_derived_from_its_families(
    name: str, families: PhaseFamilies, field: str, expected: float
) -> None:
    values = derive(families, ttft_quantile=0.9, itl_quantile=0.9)
    assert values[field] == pytest.approx(expected), name


@pytest.mark.parametrize(
    ("name", "families", "unset"),
    [
        (
            "an empty window has a zero rate and no token means",
            PhaseFamilies(WINDOW, requests=0.0, prompt_tokens=_hist(0, 0, 0, 0, 0)),
            {"prompt_tokens_mean", "prompt_tokens_cv"},
        ),
        (
            "no prefix queries, no hit rate",
            PhaseFamilies(WINDOW, prefix_hit=0.0, prefix_queried=0.0),
            {"prefix_hit_rate"},
        ),
        (
            "nothing running, no KV per sequence",
            PhaseFamilies(WINDOW, kv_usage=0.0, running=0.0),
            {"kv_tokens_per_running"},
        ),
        ("no source has the arrival CV", PhaseFamilies(WINDOW, requests=5.0), {"arrival_cv"}),
    ],
)
def test_undefined_fields_stay_unset(name: str, families: PhaseFamilies, unset: set[str]) -> None:
    values = derive(families, ttft_quantile=0.9, itl_quantile=0.9)
    assert not unset & set(values), name


def test_zero_traffic_is_a_complete_signal() -> None:
    values = derive(
        PhaseFamilies(WINDOW, age_s=5.0, requests=0.0, prompt_tokens=_hist(0, 0, 0, 0, 0), waiting=0.0),
        ttft_quantile=0.9,
        itl_quantile=0.9,
    )
    signals = phase_signals(replicas=ReplicaCounts(current=1, ready=1, starting=0), values=values)
    assert signals.arrival_rate == 0.0 and signals.missing() == ()


@pytest.mark.parametrize(
    ("name", "hit", "holds"),
    [("rounding above one does not hold", 1.00003, False), ("a real out-of-range ratio holds", 1.2, True)],
)
def test_clamping_keeps_the_policy_from_holding_on_rounding(name: str, hit: float, holds: bool) -> None:
    families = PhaseFamilies(
        WINDOW, age_s=1.0, requests=60.0, prompt_tokens=_hist(0, 0, 0, 1, 0, total=1.0),
        output_tokens=_hist(0, 0, 0, 1, 0, total=1.0), prefix_hit=hit, prefix_queried=1.0,
    )  # fmt: skip
    values = derive(families, ttft_quantile=0.9, itl_quantile=0.9)
    signals = phase_signals(replicas=ReplicaCounts(current=1, ready=1, starting=0), values=values)
    assert (problem(signals, max_age_s=60.0) is not None) is holds, name


def test_unknown_field_names_are_a_bug() -> None:
    with pytest.raises(ValueError, match="not PhaseSignals fields"):
        phase_signals(replicas=ReplicaCounts(current=1, ready=1, starting=0), values={"arival_rate": 1.0})
