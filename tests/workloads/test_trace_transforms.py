"""Each transform keeps its invariant: rate scaling, copy counts, window bounds, the modulating curve."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.sim.workloads import curves, generators, hashing, lengths, trace, transforms


@pytest.fixture(scope="module")
def steady() -> trace.Trace:
    """A 2,000 s Poisson trace at 10 req/s with Mooncake-like lengths and synthetic hashes."""
    rng = np.random.default_rng(21)
    arrival_rng, trace_rng = rng.spawn(2)
    return generators.synthetic_trace(
        name="steady",
        arrival_s=generators.renewal_arrivals(rate=10.0, duration_s=2_000.0, rng=arrival_rng),
        preset=lengths.PRESETS["mooncake-conversation"],
        rng=trace_rng,
        prefix=hashing.PrefixModel(),
    )


def _blocks_match_prompts(result: trace.Trace) -> bool:
    assert result.block_offsets is not None
    return bool(
        np.array_equal(np.diff(result.block_offsets), -(-result.prompt_tokens // result.block_tokens))
    )


def test_compression_scales_rate_by_k(steady: trace.Trace) -> None:
    compressed = transforms.compress(steady, 4.0)
    assert len(compressed) == len(steady)
    assert compressed.mean_rate == pytest.approx(4.0 * steady.mean_rate)
    assert np.array_equal(compressed.block_hashes, steady.block_hashes)  # type: ignore[arg-type]


def test_superposition_multiplies_count_by_k_over_the_same_span(steady: trace.Trace) -> None:
    stacked = transforms.superpose(steady, copies=3, rng=np.random.default_rng(0))
    assert len(stacked) == 3 * len(steady)
    assert stacked.duration_s == steady.duration_s
    assert stacked.mean_rate == pytest.approx(3 * steady.mean_rate)
    assert sorted(stacked.prompt_tokens) == sorted(np.tile(steady.prompt_tokens, 3))
    assert _blocks_match_prompts(stacked)


def test_superposed_copies_share_system_prompts_but_not_conversations(mooncake_trace: trace.Trace) -> None:
    def stacked(share: transforms.ShareMode) -> trace.Trace:
        return transforms.superpose(mooncake_trace, copies=2, rng=np.random.default_rng(1), share=share)

    def first_blocks(result: trace.Trace) -> int:
        assert result.block_offsets is not None and result.block_hashes is not None
        return np.unique(result.block_hashes[result.block_offsets[:-1]]).size

    # block 0, the system prompt of every Mooncake request, stays one block across copies unless "none"
    assert first_blocks(stacked("system")) == 1
    assert first_blocks(stacked("none")) == 2
    # copies reuse no conversation, so the ideal hit rate barely moves; sharing everything, copies hit
    alone = hashing.prefix_hit_rate_unbounded(mooncake_trace)
    assert hashing.prefix_hit_rate_unbounded(stacked("system")) == pytest.approx(alone, abs=0.005)
    assert hashing.prefix_hit_rate_unbounded(stacked("all")) > 0.6


def test_truncation_keeps_the_window_and_restarts_time(steady: trace.Trace) -> None:
    window = transforms.truncate(steady, start_s=500.0, end_s=800.0)
    inside = (steady.arrival_s >= 500.0) & (steady.arrival_s < 800.0)
    assert len(window) == np.count_nonzero(inside)
    assert window.arrival_s.min() >= 0.0 and window.arrival_s.max() < 300.0
    assert np.array_equal(window.prompt_tokens, steady.prompt_tokens[inside])
    assert _blocks_match_prompts(window)
    first = int(np.argmax(inside))
    assert all(np.array_equal(window.hashes(i), steady.hashes(first + i)) for i in range(len(window)))


def test_truncation_rejects_an_empty_window(steady: trace.Trace) -> None:
    with pytest.raises(ValueError, match="start_s < end_s"):
        transforms.truncate(steady, start_s=10.0, end_s=10.0)


@pytest.mark.parametrize(
    "curve",
    [
        curves.Steps(base_rate=1.0, changes=((1_000.0, 3.0),)),
        curves.Diurnal(mean_rate=1.0, peak_to_trough=4.0, period_s=1_000.0),
        curves.Spike(base_rate=1.0, peak_rate=5.0, start_s=600.0, duration_s=200.0),
    ],
    ids=["step 1 to 3", "diurnal 4:1", "spike 5x"],
)
def test_modulation_follows_the_rate_curve(steady: trace.Trace, curve: curves.RateCurve) -> None:
    warped = transforms.modulate(steady, curve)
    assert len(warped) == len(steady)
    assert warped.duration_s == pytest.approx(steady.duration_s)
    assert np.array_equal(warped.prompt_tokens, steady.prompt_tokens)
    edges = np.linspace(0.0, steady.duration_s, 21)
    counts, _ = np.histogram(warped.arrival_s, bins=edges)
    centres = (edges[1:] + edges[:-1]) / 2
    grid = np.linspace(0.0, steady.duration_s, 4_001)
    expected_share = curve.rate(centres) / curve.rate(grid).mean() / 20
    # Poisson noise on about 1,000 arrivals a bin, plus bins that straddle a step
    assert counts / len(steady) == pytest.approx(expected_share, rel=0.25, abs=0.004)


def test_modulation_rejects_a_curve_that_is_zero_everywhere(steady: trace.Trace) -> None:
    with pytest.raises(ValueError, match="positive somewhere"):
        transforms.modulate(steady, curves.Steps(base_rate=0.0))


def test_transforms_work_on_traces_without_hashes() -> None:
    plain = trace.Trace(name="p", arrival_s=[0.0, 1.0, 2.0], prompt_tokens=[1, 2, 3], output_tokens=[1, 1, 1])
    stacked = transforms.superpose(plain, copies=2, rng=np.random.default_rng(0))
    assert len(stacked) == 6 and not stacked.has_hashes
    assert len(transforms.truncate(plain, start_s=1.0)) == 2


def test_superposing_an_instant_trace_stacks_it_at_zero() -> None:
    instant = trace.Trace(name="i", arrival_s=[0.0, 0.0], prompt_tokens=[1, 2], output_tokens=[1, 1])
    stacked = transforms.superpose(instant, copies=3, rng=np.random.default_rng(0))
    assert list(stacked.arrival_s) == [0.0] * 6


def test_superposed_rows_keep_their_own_hashes(steady: trace.Trace) -> None:
    stacked = transforms.superpose(steady, copies=2, rng=np.random.default_rng(5), share="all")
    assert stacked.block_hashes is not None and steady.block_hashes is not None
    by_prompt = {}
    for i in range(len(steady)):
        by_prompt.setdefault(int(steady.prompt_tokens[i]), set()).add(tuple(steady.hashes(i)))
    assert all(
        tuple(stacked.hashes(i)) in by_prompt[int(stacked.prompt_tokens[i])] for i in range(len(stacked))
    )
