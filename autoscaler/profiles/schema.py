"""The performance profile schema and the engine time model it defines.

A profile is data (``models/<model>/<accelerator>-tp<N>.yaml``), validated here. Every number carries its
provenance: where it comes from and whether it was measured, derived (computed from measured figures or
hardware constants) or assumed (a default with no direct measurement behind it).

The time model is the one every part of the product shares (capacity model, simulator, emulator, router's
load gate), so they cannot disagree about what a replica can do:

- one engine step that runs ``prefill_tokens`` new prompt tokens (with ``attention_pairs`` causal
  attention pairs among them) next to ``batch`` decoding sequences holding ``context`` KV tokens in
  total takes
  ``step.base_s + decode.per_sequence_s * batch + decode.per_context_token_s * context
  + prefill.per_token_s * prefill_tokens + prefill.per_attention_pair_s * attention_pairs``,
  plus ``prefill.per_step_s`` when ``prefill_tokens > 0`` (a step that prefills costs more than a pure
  decode step of the same batch, whatever the prompt length);
- a prefill of ``n`` uncached tokens after ``h`` cached ones has ``(h+n)^2 - h^2`` attention pairs (the
  roofline FLOP count 2·L·d_attn·((h+n)²−h²) divided by a constant that ``per_attention_pair_s`` absorbs),
  and runs in chunks of at most ``limits.max_num_batched_tokens`` tokens, one step each.
"""

from __future__ import annotations

import enum
import math
from typing import Annotated

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

FloatArray = npt.NDArray[np.float64]


class ProvenanceKind(enum.StrEnum):
    MEASURED = "measured"
    DERIVED = "derived"
    ASSUMED = "assumed"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Quantity(_Frozen):
    """A number and where it comes from."""

    value: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    kind: ProvenanceKind
    source: Annotated[str, Field(min_length=3)]


class PositiveQuantity(Quantity):
    value: Annotated[float, Field(gt=0, allow_inf_nan=False)]


class StepModel(_Frozen):
    base_s: PositiveQuantity  # fixed cost of one engine step (weights streamed once, scheduling, sampling)


class PrefillModel(_Frozen):
    per_token_s: PositiveQuantity  # linear layers, per new prompt token
    per_attention_pair_s: Quantity  # causal attention, per (query, key) pair
    # Fixed cost a step pays on top of step.base_s when it carries prompt tokens (the engine prepares the
    # prefill's attention metadata, and runs the step without the CUDA graph a pure decode step replays).
    per_step_s: Quantity = Quantity(
        value=0.0, kind=ProvenanceKind.ASSUMED, source="not separated from step.base_s in the figures used"
    )


class DecodeModel(_Frozen):
    per_sequence_s: Quantity  # per sequence in the batch (the `b` of a + b·B + c·C)
    per_context_token_s: Quantity  # per KV token read (the `c`)


class KvCache(_Frozen):
    capacity_tokens: PositiveQuantity
    block_size: PositiveQuantity
    bytes_per_token: PositiveQuantity  # whole model, all TP ranks


class KvTransfer(_Frozen):
    """P/D only: moving a prompt's KV from the prefill to the decode replica."""

    bandwidth_bytes_per_s: PositiveQuantity
    latency_s: Quantity


class Limits(_Frozen):
    max_num_seqs: PositiveQuantity
    max_num_batched_tokens: PositiveQuantity
    max_kv_usage: Annotated[float, Field(gt=0, le=1)] = 0.9  # admission headroom the capacity model keeps
    max_model_len: Annotated[int, Field(ge=2)] | None = None  # longer contexts are refused; None: KV capacity


class ClientLatency(_Frozen):
    """What a streaming client sees beyond the engine's first-token time (derived profiles; unset: nothing).

    The API server, tokenizer and HTTP add ``first_token_s``; the stream delivers the first token with
    the next one(s), ``first_token_steps`` engine steps later (the ground truth's load tool saw tokens in
    pairs). ``autoscaler.sim.stage_replay`` adds it to the TTFT it reports.
    """

    first_token_s: Quantity
    first_token_steps: Quantity


class Startup(_Frozen):
    mean_s: PositiveQuantity  # from pod creation to ready, including image pull and weight load
    spread_s: Quantity  # standard deviation


class Profile(_Frozen):
    model: Annotated[str, Field(min_length=1)]
    accelerator: Annotated[str, Field(min_length=1)]
    tensor_parallel: Annotated[int, Field(ge=1)]
    gpus_per_replica: Annotated[int, Field(ge=1)]
    engine: str = "vLLM"
    step: StepModel
    prefill: PrefillModel
    decode: DecodeModel
    kv_cache: KvCache
    kv_transfer: KvTransfer
    limits: Limits
    startup: Startup
    client: ClientLatency | None = None
    notes: str = ""

    @property
    def name(self) -> str:
        return f"{self.model}/{self.accelerator}-tp{self.tensor_parallel}"

    # --- the shared time model -----------------------------------------------------------------------

    def step_time(
        self, *, prefill_tokens: float, attention_pairs: float, batch: float, context: float
    ) -> float:
        """Seconds for one engine step (see the module docstring)."""
        return (
            self.step.base_s.value
            + (self.prefill.per_step_s.value if prefill_tokens > 0 else 0.0)
            + self.decode.per_sequence_s.value * batch
            + self.decode.per_context_token_s.value * context
            + self.prefill.per_token_s.value * prefill_tokens
            + self.prefill.per_attention_pair_s.value * attention_pairs
        )

    def prefill_time(self, new_tokens: float, cached_tokens: float = 0.0) -> float:
        """Seconds to prefill ``new_tokens`` after ``cached_tokens`` on an otherwise idle replica."""
        return float(self.prefill_times(np.asarray(new_tokens, float), np.asarray(cached_tokens, float)))

    def prefill_times(self, new_tokens: FloatArray, cached_tokens: FloatArray) -> FloatArray:
        """Vectorised ``prefill_time``: chunked into steps of at most ``max_num_batched_tokens`` tokens."""
        steps = np.maximum(1.0, np.ceil(new_tokens / self.limits.max_num_batched_tokens.value))
        pairs = (cached_tokens + new_tokens) ** 2 - cached_tokens**2
        return np.asarray(
            steps * (self.step.base_s.value + self.prefill.per_step_s.value)
            + self.prefill.per_token_s.value * new_tokens
            + self.prefill.per_attention_pair_s.value * pairs,
            dtype=np.float64,
        )

    def decode_step_time(self, batch: float, context_per_sequence: float) -> float:
        """Seconds per decode step for ``batch`` sequences of ``context_per_sequence`` KV tokens each."""
        return self.step_time(
            prefill_tokens=0.0, attention_pairs=0.0, batch=batch, context=batch * context_per_sequence
        )

    def kv_transfer_time(self, tokens: float) -> float:
        """Seconds to move the KV of ``tokens`` prompt tokens from a prefill to a decode replica."""
        return (
            self.kv_transfer.latency_s.value
            + tokens * self.kv_cache.bytes_per_token.value / self.kv_transfer.bandwidth_bytes_per_s.value
        )

    @property
    def kv_capacity_tokens(self) -> float:
        return self.kv_cache.capacity_tokens.value

    @property
    def max_num_seqs(self) -> int:
        return math.floor(self.limits.max_num_seqs.value)

    @property
    def max_num_batched_tokens(self) -> int:
        return math.floor(self.limits.max_num_batched_tokens.value)

    @property
    def block_size(self) -> int:
        return math.floor(self.kv_cache.block_size.value)
