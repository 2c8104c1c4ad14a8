"""Observations and profiles for the baseline tests, and a driver that steps a policy through time."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from autoscaler.core.decision import Decision
from autoscaler.core.observation import Observation, PhaseSignals, ReplicaCounts
from autoscaler.core.phases import Phase
from autoscaler.policy.interface import ScalingPolicy
from autoscaler.profiles.schema import Profile


def signals(
    *,
    current: int = 1,
    ready: int | None = None,
    starting: int = 0,
    rate: float | None = 10.0,
    prompt: float | None = 1000.0,
    output: float | None = 200.0,
    queue: float | None = 0.0,
    kv: float | None = 0.5,
    ttft: float | None = None,
    itl: float | None = None,
) -> PhaseSignals:
    return PhaseSignals(
        replicas=ReplicaCounts(
            current=current, ready=current - starting if ready is None else ready, starting=starting
        ),
        arrival_rate=rate,
        prompt_tokens_mean=prompt,
        output_tokens_mean=output,
        queue_length=queue,
        kv_usage=kv,
        ttft_observed_s=ttft,
        itl_observed_s=itl,
    )


def observe(time: float = 0.0, **phases: PhaseSignals) -> Observation:
    return Observation(pool="pool", time=time, phases={Phase(name): s for name, s in phases.items()})


def drive(policy: ScalingPolicy[Any], observations: Iterable[Observation]) -> list[Decision]:
    """Step ``policy`` through ``observations`` (each at its own time), threading the state."""
    state = policy.initial_state()
    decisions = []
    for observation in observations:
        decision, state = policy.step(observation, state, now=observation.time)
        decisions.append(decision)
    return decisions


def _quantity(value: float) -> dict[str, object]:
    return {"value": value, "kind": "assumed", "source": "round test figure"}


def round_profile(*, gpus: int = 1) -> Profile:
    """Round numbers: prefill 10k tokens/s after a 10 ms step; decode ITL 10 ms + 0.1 ms per sequence."""
    return Profile.model_validate(
        {
            "model": "test/round",
            "accelerator": "TEST",
            "tensor_parallel": gpus,
            "gpus_per_replica": gpus,
            "step": {"base_s": _quantity(0.01)},
            "prefill": {"per_token_s": _quantity(1e-4), "per_attention_pair_s": _quantity(0.0)},
            "decode": {"per_sequence_s": _quantity(1e-4), "per_context_token_s": _quantity(0.0)},
            "kv_cache": {
                "capacity_tokens": _quantity(100_000),
                "block_size": _quantity(16),
                "bytes_per_token": _quantity(131072),
            },
            "kv_transfer": {"bandwidth_bytes_per_s": _quantity(5e10), "latency_s": _quantity(0.002)},
            "limits": {"max_num_seqs": _quantity(256), "max_num_batched_tokens": _quantity(8192)},
            "startup": {"mean_s": _quantity(120), "spread_s": _quantity(30)},
        }
    )
