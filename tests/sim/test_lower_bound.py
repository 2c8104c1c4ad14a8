"""The lower bound is the profile's work at full utilisation per window, computed by hand here."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import LatencyTarget, Slo
from autoscaler.profiles.schema import Profile
from autoscaler.sim.feasibility import perfect_cache_tokens
from autoscaler.sim.lower_bound import lower_bound
from autoscaler.sim.workloads.trace import Trace

P, D, A = Phase.PREFILL, Phase.DECODE, Phase.AGGREGATED


def _value(quantity: object, value: float) -> object:
    return quantity.model_copy(update={"value": value})  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def simple(profile: Profile) -> Profile:
    """Round numbers: a step costs 10 ms, a prompt token 0.1 ms, a decoding sequence 1 ms; no attention or
    context cost; 1,000-token steps; a KV cache that never binds."""
    return profile.model_copy(
        update={
            "step": profile.step.model_copy(update={"base_s": _value(profile.step.base_s, 0.01)}),
            "prefill": profile.prefill.model_copy(
                update={
                    "per_token_s": _value(profile.prefill.per_token_s, 1e-4),
                    "per_attention_pair_s": _value(profile.prefill.per_attention_pair_s, 0.0),
                    "per_step_s": _value(profile.prefill.per_step_s, 0.0),
                }
            ),
            "decode": profile.decode.model_copy(
                update={
                    "per_sequence_s": _value(profile.decode.per_sequence_s, 1e-3),
                    "per_context_token_s": _value(profile.decode.per_context_token_s, 0.0),
                }
            ),
            "limits": profile.limits.model_copy(
                update={"max_num_batched_tokens": _value(profile.limits.max_num_batched_tokens, 1000)}
            ),
        }
    )


def _window(n: int, prompt: int, output: int, *, shared_prefix: bool = False) -> Trace:
    """``n`` requests spread over one 60 s window; with ``shared_prefix`` all carry the same block hashes."""
    blocks = -(-prompt // 500)
    hashes = {}
    if shared_prefix:
        hashes = {
            "block_offsets": np.arange(n + 1) * blocks,
            "block_hashes": np.tile(np.arange(blocks), n),
            "block_tokens": 500,
        }
    return Trace(
        name="window",
        arrival_s=np.linspace(0.0, 60.0, n),
        prompt_tokens=[prompt] * n,
        output_tokens=[output] * n,
        **hashes,
    )


# Per request: prefill 1,000 tokens x 0.1 ms + one 10 ms step = 0.11 s (P/D; aggregated leaves the step's
# base to the decode steps: 0.10 s). Decode: at ITL 50 ms the batch is (50 - 10) / 1 = 40, so a step's
# 10 ms base is shared by 40 and each of 100 steps costs 0.25 + 1 ms: 0.125 s per 101-token output.
CASES = [
    # (id, mode, requests, output, itl_s, minimum, maximum, shared_prefix, expected)
    (
        "P/D: 600 prefills of 66 s in a 60 s window need 2, 600 decodes of 75 s need 2",
        ServingMode.DISAGGREGATED,
        600,
        101,
        0.05,
        1,
        32,
        False,
        {P: 2, D: 2},
    ),
    (
        "P/D: 500 prefills fill 55 s: one replica",
        ServingMode.DISAGGREGATED,
        500,
        101,
        0.05,
        1,
        32,
        False,
        {P: 1, D: 2},
    ),
    (
        "P/D: a tighter ITL shrinks the batch to 10, so decode costs 0.2 s a request: 120 s, 2 replicas",
        ServingMode.DISAGGREGATED,
        600,
        101,
        0.02,
        1,
        32,
        False,
        {P: 2, D: 2},
    ),
    (
        "P/D: at 0.2 s x 1,000 requests, decode needs 200 s: 4 replicas",
        ServingMode.DISAGGREGATED,
        1000,
        101,
        0.02,
        1,
        32,
        False,
        {P: 2, D: 4},
    ),
    ("the maximum caps the bound", ServingMode.DISAGGREGATED, 1000, 101, 0.02, 1, 3, False, {P: 2, D: 3}),
    ("the minimum lifts the bound", ServingMode.DISAGGREGATED, 10, 2, 0.05, 3, 32, False, {P: 3, D: 3}),
    (
        "a perfect cache leaves 1 token of 1,000 to prefill: 600 x 0.1 ms + 10 ms x 1/1000 each, one replica",
        ServingMode.DISAGGREGATED,
        600,
        101,
        0.05,
        1,
        32,
        True,
        {P: 1, D: 2},
    ),
    (
        "aggregated: prefill 0.10 s and decode 0.125 s a request, 600 of them: 135 s, 3 replicas",
        ServingMode.AGGREGATED,
        600,
        101,
        0.05,
        1,
        32,
        False,
        {A: 3},
    ),
]


@pytest.mark.parametrize(
    ("mode", "requests", "output", "itl_s", "minimum", "maximum", "shared_prefix", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_lower_bound_is_work_over_the_window(
    simple: Profile,
    mode: ServingMode,
    requests: int,
    output: int,
    itl_s: float,
    minimum: int,
    maximum: int,
    shared_prefix: bool,
    expected: dict[Phase, int],
) -> None:
    trace = _window(requests, 1000, output, shared_prefix=shared_prefix)
    bound = lower_bound(
        trace,
        profile=simple,
        slo=Slo(ttft=LatencyTarget(1.0), itl=LatencyTarget(itl_s)),
        mode=mode,
        cached_tokens=perfect_cache_tokens(trace),
        min_replicas={p: minimum for p in mode.phases},
        max_replicas={p: maximum for p in mode.phases},
    )
    assert {phase: int(r[0]) for phase, r in bound.replicas.items()} == expected
    assert bound.gpu_hours == pytest.approx(sum(expected.values()) * 60.0 / 3600.0)


def test_perfect_cache_counts_blocks_seen_before_short_of_the_last_token() -> None:
    trace = Trace(
        name="chain",
        arrival_s=[0.0, 1.0, 2.0],
        prompt_tokens=[1000, 1000, 1500],
        output_tokens=[1, 1, 1],
        block_offsets=[0, 2, 4, 7],
        block_hashes=[1, 2, 1, 2, 1, 9, 3],
        block_tokens=500,
    )
    assert perfect_cache_tokens(trace).tolist() == [0, 999, 500]
