"""Seeded generators hit their target rate, burstiness, rate curve and length statistics."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.sim.workloads import curves, generators, hashing, lengths, trace


def _cv(arrivals: np.ndarray) -> float:
    gaps = np.diff(arrivals)
    return float(gaps.std() / gaps.mean())


@pytest.mark.parametrize(
    ("family", "cv"),
    [("exponential", 1.0), ("gamma", 0.5), ("gamma", 3.0), ("weibull", 0.5), ("weibull", 2.0)],
    ids=["poisson", "gamma: regular", "gamma: bursty", "weibull: regular", "weibull: bursty"],
)
def test_renewal_process_hits_rate_and_cv(family: generators.RenewalFamily, cv: float) -> None:
    arrivals = generators.renewal_arrivals(
        rate=5.0, duration_s=4_000.0, rng=np.random.default_rng(0), family=family, cv=cv
    )
    assert arrivals[0] >= 0 and arrivals[-1] < 4_000.0
    assert np.all(np.diff(arrivals) >= 0)
    assert arrivals.size / 4_000.0 == pytest.approx(5.0, rel=0.05 * max(cv, 1.0))
    assert _cv(arrivals) == pytest.approx(cv, rel=0.1)


def test_weibull_shape_one_is_exponential() -> None:
    assert generators.weibull_shape(1.0) == pytest.approx(1.0, abs=1e-6)


def _counts(arrivals: np.ndarray, edges: list[float]) -> np.ndarray:
    counts, _ = np.histogram(arrivals, bins=edges)
    return counts


def test_diurnal_curve_peaks_and_troughs_at_the_stated_ratio() -> None:
    curve = curves.Diurnal(mean_rate=10.0, peak_to_trough=3.0, period_s=1_000.0, peak_s=250.0)
    arrivals = generators.curve_arrivals(curve, duration_s=20_000.0, rng=np.random.default_rng(1))
    assert arrivals.size / 20_000.0 == pytest.approx(10.0, rel=0.03)
    phase = np.mod(arrivals, 1_000.0)
    near_peak = np.count_nonzero(np.abs(phase - 250.0) < 50.0)
    near_trough = np.count_nonzero(np.abs(phase - 750.0) < 50.0)
    assert near_peak / near_trough == pytest.approx(3.0, rel=0.15)


def test_step_pattern_changes_rate_at_the_step() -> None:
    curve = curves.Steps(base_rate=2.0, changes=((500.0, 8.0), (1_000.0, 0.0)))
    arrivals = generators.curve_arrivals(curve, duration_s=1_500.0, rng=np.random.default_rng(2))
    low, high, off = _counts(arrivals, [0.0, 500.0, 1_000.0, 1_500.0])
    assert low == pytest.approx(1_000, rel=0.1)
    assert high == pytest.approx(4_000, rel=0.05)
    assert off == 0


def test_spike_pattern_is_a_flash_crowd() -> None:
    curve = curves.Spike(base_rate=1.0, peak_rate=20.0, start_s=300.0, duration_s=60.0)
    arrivals = generators.curve_arrivals(curve, duration_s=600.0, rng=np.random.default_rng(3))
    before, spike, after = _counts(arrivals, [0.0, 300.0, 360.0, 600.0])
    assert before == pytest.approx(300, rel=0.2)
    assert spike == pytest.approx(1_200, rel=0.1)
    assert after == pytest.approx(240, rel=0.2)


def test_piecewise_linear_curve_interpolates() -> None:
    curve = curves.PiecewiseLinear(((0.0, 0.0), (1_000.0, 10.0)))
    arrivals = generators.curve_arrivals(curve, duration_s=1_000.0, rng=np.random.default_rng(4))
    first, second = _counts(arrivals, [0.0, 500.0, 1_000.0])
    assert first + second == pytest.approx(5_000, rel=0.05)
    assert second / first == pytest.approx(3.0, rel=0.1)


PUBLISHED = {
    # preset: (prompt mean, p50), (output mean, p50), as published (output p50 skipped where mean < p50)
    "azure-conversation": ((1_155, 1_020), (211, 129)),
    "mooncake-conversation": ((12_035, 6_909), (343, None)),
}


@pytest.mark.parametrize("preset", sorted(PUBLISHED))
def test_length_presets_reproduce_published_statistics(preset: str) -> None:
    rng = np.random.default_rng(5)
    fitted = lengths.PRESETS[preset]
    (prompt_mean, prompt_p50), (output_mean, output_p50) = PUBLISHED[preset]
    prompts = fitted.prompt.sample(rng, 200_000)
    outputs = fitted.output.sample(rng, 200_000)
    assert prompts.min() >= 1 and prompts.max() <= fitted.prompt.high
    assert prompts.mean() == pytest.approx(prompt_mean, rel=0.03)
    assert np.median(prompts) == pytest.approx(prompt_p50, rel=0.02)
    # Azure's clip at 1,000 output tokens costs 5 % of the mean (documented in lengths.py)
    assert outputs.mean() == pytest.approx(output_mean, rel=0.06)
    if output_p50 is not None:
        assert np.median(outputs) == pytest.approx(output_p50, rel=0.02)


@pytest.mark.parametrize(
    ("mean", "median", "p99"),
    [(1_155, 1_020, 4_142), (211, 129, 601), (12_035, 6_909, 85_400), (343, 350, 1_119)],
    ids=["azure prompt", "azure output", "mooncake input", "mooncake output"],
)
def test_fitted_p99_is_within_a_factor_of_the_published_one(mean: float, median: float, p99: float) -> None:
    fitted = lengths.LogNormalLengths.fit(mean=mean, median=median, p99=p99)
    assert p99 / 2.2 < fitted.quantile(0.99) < p99 * 2.2


def test_mean_below_median_fits_mean_and_p99() -> None:
    fitted = lengths.LogNormalLengths.fit(mean=343, median=350, p99=1_119)
    assert fitted.quantile(0.99) == pytest.approx(1_119, rel=1e-6)
    assert np.exp(fitted.mu + fitted.sigma**2 / 2) == pytest.approx(343, rel=1e-6)


def _synthetic(seed: int) -> trace.Trace:
    rng = np.random.default_rng(seed)
    arrival_rng, trace_rng = rng.spawn(2)
    return generators.synthetic_trace(
        name="s",
        arrival_s=generators.renewal_arrivals(rate=4.0, duration_s=600.0, rng=arrival_rng),
        preset=lengths.PRESETS["mooncake-conversation"],
        rng=trace_rng,
        prefix=hashing.PrefixModel(),
    )


def test_same_seed_same_trace_and_different_seed_different_trace() -> None:
    first, again, other = _synthetic(9), _synthetic(9), _synthetic(10)
    for field in ("arrival_s", "prompt_tokens", "output_tokens", "block_offsets", "block_hashes"):
        assert np.array_equal(getattr(first, field), getattr(again, field))
    assert not np.array_equal(first.prompt_tokens, other.prompt_tokens)
    assert first.has_hashes


@pytest.mark.parametrize("correlation", [0.0, 0.6, 0.9], ids=["independent", "correlated", "strongly"])
def test_correlated_lengths_keep_their_marginals_and_correlate_in_log(correlation: float) -> None:
    base = lengths.PRESETS["azure-conversation"]
    preset = lengths.LengthPreset(prompt=base.prompt, output=base.output, correlation=correlation)
    prompt, output = preset.sample(np.random.default_rng(11), 200_000)
    assert np.median(prompt) == pytest.approx(1_020, rel=0.03)
    assert np.median(output) == pytest.approx(129, rel=0.03)
    measured = np.corrcoef(np.log(prompt), np.log(output))[0, 1]
    assert measured == pytest.approx(correlation, abs=0.03)


def test_uncorrelated_lengths_draw_exactly_as_independent_sampling() -> None:
    base = lengths.PRESETS["azure-conversation"]
    prompt, output = base.sample(np.random.default_rng(5), 1000)
    rng = np.random.default_rng(5)
    np.testing.assert_array_equal(prompt, base.prompt.sample(rng, 1000))
    np.testing.assert_array_equal(output, base.output.sample(rng, 1000))
