"""Ideal prefix hit rate on the real Mooncake hashes, and the synthetic prefix model's structure."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from autoscaler.sim.workloads import hashing, trace


def _tiny(hashes: list[list[int]]) -> trace.Trace:
    counts = [len(h) for h in hashes]
    return trace.Trace(
        name="tiny",
        arrival_s=np.arange(len(hashes), dtype=float),
        prompt_tokens=[512 * c for c in counts],
        output_tokens=[1] * len(hashes),
        block_offsets=np.concatenate(([0], np.cumsum(counts))),
        block_hashes=[x for h in hashes for x in h],
    )


def test_mooncake_unbounded_hit_rate_matches_the_published_figure(mooncake_trace: trace.Trace) -> None:
    assert mooncake_trace.block_hashes is not None
    assert mooncake_trace.block_hashes.size == 288_500
    assert np.unique(mooncake_trace.block_hashes).size == 182_790
    assert hashing.prefix_hit_rate_unbounded(mooncake_trace) == pytest.approx(0.366, abs=0.0005)


def test_hit_needs_an_earlier_request_and_a_leading_run() -> None:
    # request 1 hits 0 and 1; request 2 hits 0, misses 9, so its later 1 (unchained) does not count
    assert hashing.prefix_hit_rate_unbounded(_tiny([[0, 1, 2], [0, 1, 3], [0, 9, 1]])) == pytest.approx(3 / 9)


def test_repeats_inside_one_request_are_not_hits() -> None:
    assert hashing.prefix_hit_rate_unbounded(_tiny([[5, 5]])) == 0.0


def _strip(source: trace.Trace) -> trace.Trace:
    return dataclasses.replace(source, block_offsets=None, block_hashes=None)


def test_synthetic_hashes_count_blocks_and_start_from_system_prompts(azure_trace: trace.Trace) -> None:
    model = hashing.PrefixModel(system_prompts=3, system_prompt_blocks=2)
    synthetic = hashing.synthesize_hashes(azure_trace, rng=np.random.default_rng(7), model=model)
    assert synthetic.block_offsets is not None
    assert np.array_equal(np.diff(synthetic.block_offsets), -(-azure_trace.prompt_tokens // 512))
    firsts = {int(synthetic.hashes(i)[0]) for i in range(len(synthetic)) if synthetic.prompt_tokens[i] > 1024}
    assert firsts <= {0, 2, 4}
    assert 0.2 < hashing.prefix_hit_rate_unbounded(synthetic) < 0.5


def test_synthetic_prefix_model_reuses_less_than_mooncake_does(mooncake_trace: trace.Trace) -> None:
    """Documented in hashing.py: independent lengths halve the reuse (about 17 % against 36.6 %)."""
    synthetic = hashing.synthesize_hashes(_strip(mooncake_trace), rng=np.random.default_rng(1))
    assert hashing.prefix_hit_rate_unbounded(synthetic) == pytest.approx(0.17, abs=0.03)


def test_more_followups_mean_more_reuse(mooncake_trace: trace.Trace) -> None:
    rates = [
        hashing.prefix_hit_rate_unbounded(
            hashing.synthesize_hashes(
                _strip(mooncake_trace),
                rng=np.random.default_rng(3),
                model=hashing.PrefixModel(followup_probability=p),
            )
        )
        for p in (0.0, 0.39, 0.9)
    ]
    assert rates == sorted(rates)
    assert rates[0] < rates[2] - 0.2


def test_synthetic_hashes_are_deterministic_by_seed(azure_trace: trace.Trace) -> None:
    def draw(seed: int) -> np.ndarray:
        hashes = hashing.synthesize_hashes(azure_trace, rng=np.random.default_rng(seed)).block_hashes
        assert hashes is not None
        return hashes

    assert np.array_equal(draw(11), draw(11))
    assert not np.array_equal(draw(11), draw(12))
