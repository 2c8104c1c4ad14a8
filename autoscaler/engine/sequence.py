"""A request as an engine sees it: mutable progress state, one object per request for its whole life.

Mutable on purpose and with ``__slots__``: the simulator pushes a million of these through replicas, and a
sequence moves between replicas (prefill, then decode) carrying its timings with it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["EngineSequence"]


class EngineSequence:
    """Progress of one request. Token counts are ints; times are the driver's seconds (NaN until known)."""

    __slots__ = (
        "arrival",
        "block_hashes",
        "cached_tokens",
        "computed",
        "epoch",
        "finish_time",
        "first_token_time",
        "generated",
        "output_tokens",
        "preemptions",
        "prefill_done_time",
        "prompt_tokens",
        "step0",
        "target",
        "uid",
    )

    def __init__(
        self,
        uid: int,
        *,
        prompt_tokens: int,
        output_tokens: int,
        arrival: float,
        block_hashes: Sequence[int] = (),
    ) -> None:
        self.uid = uid
        self.prompt_tokens = prompt_tokens
        self.output_tokens = max(1, output_tokens)
        self.arrival = arrival
        self.block_hashes = block_hashes
        # Tokens whose KV must exist before decoding: the prompt, plus tokens generated before a preemption
        # (recomputed on re-admission).
        self.target = prompt_tokens
        self.computed = 0  # of ``target``, KV computed (or received) so far; set at admission
        self.generated = 0  # output tokens produced so far
        self.cached_tokens = 0  # prompt tokens found in the prefix cache at the (last) prefill admission
        self.epoch = 0  # bumped on preemption, to invalidate the engine's stale heap entries
        self.step0 = 0  # while decoding: generated tokens = the replica's virtual step - step0
        self.preemptions = 0
        self.first_token_time = float("nan")
        self.prefill_done_time = float("nan")
        self.finish_time = float("nan")

    @property
    def context_tokens(self) -> int:
        return self.prompt_tokens + self.generated
