"""Replay a load tool's constant-rate stages through one simulated replica (the engine model).

A ground-truth run (``../shared/groundtruth``) is one engine serving back-to-back stages of an
inference-perf ``shared_prefix`` workload: ``groups`` system prompts, each followed by
``prompts_per_group`` questions; every request picks one of those prompts (seeded uniform choice here), so
after the first pass most of each prompt is in the prefix cache; output lengths are fixed
(``ignore_eos``) and arrivals evenly spaced. This module builds that request stream with chained block
hashes (a group's system-prompt blocks are shared, a question's are its own), drives one
``ReplicaEngine`` through it event by event, and summarises each stage as the load tool did: TTFT and E2E
mean and p90 over the requests sent in that stage, TPOT = (E2E mean - TTFT mean) / (output - 1).

Pure and deterministic for a seed: no clock, no I/O.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from autoscaler.engine.replica import ReplicaEngine
from autoscaler.engine.sequence import EngineSequence
from autoscaler.profiles.calibration import Stage
from autoscaler.profiles.schema import Profile

__all__ = ["StageLatency", "replay_stages"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StageLatency:
    requests: int
    unfinished: int
    ttft_mean_s: float
    ttft_p90_s: float
    e2e_mean_s: float
    e2e_p90_s: float
    tpot_s: float


def _block_hashes(stage: Stage, group: int, prompt: int, block: int) -> list[int]:
    full = stage.prompt_tokens // block
    shared = stage.shared_prefix_tokens // block
    # Distinct integers per (group, block) for shared blocks and per (group, prompt, block) otherwise; the
    # prompt's shape is part of the key so two experiments' prompts never collide in one cache.
    shape = (stage.prompt_tokens, stage.shared_prefix_tokens, stage.groups, stage.prompts_per_group)
    return [hash((shape, group, -1 if j < shared else prompt, j)) for j in range(full)]


def replay_stages(profile: Profile, stages: Sequence[Stage], *, seed: int = 0) -> list[StageLatency]:
    """Run the stages back to back on one replica; latencies per stage (see the module docstring).

    A profile's ``client`` latency (what the client sees beyond the engine's first-token time) is added to
    each TTFT as ``first_token_s + first_token_steps x`` the request's own time between tokens, capped
    at its E2E.
    """
    lag_s = profile.client.first_token_s.value if profile.client else 0.0
    lag_steps = profile.client.first_token_steps.value if profile.client else 0.0
    block = profile.block_size
    engine = ReplicaEngine(profile, block_tokens=block)
    rng = np.random.default_rng(seed)
    seqs: list[tuple[int, EngineSequence]] = []
    start = 0.0
    uid = 0
    for index, stage in enumerate(stages):
        count = math.floor(stage.rate * stage.duration_s)
        picks = rng.integers(0, stage.groups * stage.prompts_per_group, size=count)
        for k in range(count):
            group, prompt = divmod(int(picks[k]), stage.prompts_per_group)
            seqs.append(
                (
                    index,
                    EngineSequence(
                        uid,
                        prompt_tokens=stage.prompt_tokens,
                        output_tokens=stage.output_tokens,
                        arrival=start + k / stage.rate,
                        block_hashes=_block_hashes(stage, group, prompt, block),
                    ),
                )
            )
            uid += 1
        start += stage.duration_s
    i = 0
    while True:
        t_next = engine.next_event_time()
        if i < len(seqs) and seqs[i][1].arrival <= t_next:
            engine.admit(seqs[i][1], seqs[i][1].arrival)
            i += 1
        elif math.isfinite(t_next):
            engine.advance(t_next)
        else:
            break
    out: list[StageLatency] = []
    for index, stage in enumerate(stages):
        mine = [seq for s, seq in seqs if s == index]
        done = [seq for seq in mine if math.isfinite(seq.finish_time)]
        first = np.array([s.first_token_time - s.arrival for s in done])
        e2e = np.array([s.finish_time - s.arrival for s in done])
        own_step = (e2e - first) / max(1, stage.output_tokens - 1)
        ttft = np.minimum(first + lag_s + lag_steps * own_step, e2e)
        out.append(
            StageLatency(
                requests=len(mine),
                unfinished=len(mine) - len(done),
                ttft_mean_s=float(ttft.mean()),
                ttft_p90_s=float(np.percentile(ttft, 90)),
                e2e_mean_s=float(e2e.mean()),
                e2e_p90_s=float(np.percentile(e2e, 90)),
                tpot_s=float((e2e.mean() - ttft.mean()) / max(1, stage.output_tokens - 1)),
            )
        )
    return out
