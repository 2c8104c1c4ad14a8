"""Prefix caching: a repeated prefix is not recomputed; free blocks are evicted least recently used first."""

from __future__ import annotations

import pytest

from autoscaler.engine.prefix_cache import PrefixCache
from autoscaler.engine.replica import ReplicaEngine
from autoscaler.engine.sequence import EngineSequence
from autoscaler.profiles.schema import Profile
from tests.engine.helpers import run


def test_match_counts_only_the_leading_run() -> None:
    cache = PrefixCache()
    cache.pin([1, 2, 3])
    assert cache.match([1, 2, 9, 3]) == 2
    assert cache.match([9, 1]) == 0


def test_released_blocks_stay_cached_until_evicted_oldest_first() -> None:
    cache = PrefixCache()
    cache.pin([1, 2])
    cache.unpin([1, 2])
    cache.pin([3])
    cache.unpin([3])
    assert cache.free_blocks == 3
    cache.evict_to(1)
    assert cache.match([3]) == 1 and cache.match([1]) == 0


def test_pinned_blocks_are_never_evicted() -> None:
    cache = PrefixCache()
    cache.pin([1, 2])
    cache.evict_to(0)
    assert cache.match([1, 2]) == 2


def test_second_request_with_the_same_prefix_prefills_only_the_rest(profile: Profile) -> None:
    engine = ReplicaEngine(profile, block_tokens=512)
    first = EngineSequence(0, prompt_tokens=1100, output_tokens=1, arrival=0.0, block_hashes=[7, 8, 9])
    second = EngineSequence(1, prompt_tokens=1100, output_tokens=1, arrival=1.0, block_hashes=[7, 8, 10])
    run(engine, [(0.0, first), (1.0, second)])
    assert second.cached_tokens == 1024
    pairs = 1100**2 - 1024**2
    step = profile.step_time(prefill_tokens=76, attention_pairs=pairs, batch=0, context=0)
    assert second.first_token_time == pytest.approx(1.0 + step)
    assert engine.hit_blocks == 2 and engine.query_blocks == 6


def test_a_fully_cached_prompt_still_computes_its_last_token(profile: Profile) -> None:
    engine = ReplicaEngine(profile, block_tokens=512)
    first = EngineSequence(0, prompt_tokens=1024, output_tokens=1, arrival=0.0, block_hashes=[7, 8])
    again = EngineSequence(1, prompt_tokens=1024, output_tokens=1, arrival=1.0, block_hashes=[7, 8])
    run(engine, [(0.0, first), (1.0, again)])
    assert again.cached_tokens == 1023
