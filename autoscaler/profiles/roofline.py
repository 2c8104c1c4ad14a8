"""A roofline step-time model for one model on one accelerator, mapped onto the profile's time model.

The profile's time model (``schema.py``) is linear: a step costs ``base + per_sequence·B +
per_context_token·C + per_token·n + per_attention_pair·pairs (+ per_step when it prefills)``. Each
coefficient is a physical time at the datasheet's peak divided by an efficiency, plus overheads:

- ``step.base_s``: the weights every step streams from memory (all experts of a MoE: a serving batch
  touches them all), at ``weight_bandwidth`` of the peak, plus fixed overheads per step (scheduling,
  sampling), per layer (kernel launches, norms, small kernels) and per tensor-parallel all-reduce (two
  per layer);
- ``decode.per_sequence_s``: a fixed cost per sequence (the scheduler's and sampler's bookkeeping), a
  decoding token's linear-layer FLOPs (active experts only) at ``decode_compute`` of the peak (mostly
  hidden under the weight stream: the kernel timings put it above 1) and its all-reduce traffic, as a
  prompt token's below: what a batch adds on top of the weight stream;
- ``decode.per_context_token_s``: the KV bytes a context token holds on one GPU, at ``kv_bandwidth``;
- ``prefill.per_token_s``: a prompt token's linear-layer FLOPs at ``prefill_compute``, plus its share of
  the all-reduces (two per layer of ``hidden`` activations, ring traffic ``2(TP-1)/TP``) at
  ``link_bandwidth`` of the interconnect;
- ``prefill.per_attention_pair_s``: ``2·L·d_attn`` FLOPs per pair at ``attention_compute``;
- ``prefill.per_step_s``: a fixed cost of a step that prefills.

The coefficients are ``basis(hardware) @ efficiency.vector()``: linear in the inverse efficiencies and the
overheads, so the same basis serves the derivation and the fit of the efficiencies to measured runs
(``calibration.py``). ``Hardware.prefill_time`` and ``decode_step_time`` are the bare roofline (peak
figures, max of compute and memory time), for checking the limits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from autoscaler.profiles.accelerators import Accelerator
from autoscaler.profiles.architecture import Architecture

__all__ = [
    "COEFFICIENTS",
    "DTYPE_BYTES",
    "EFFICIENCY_TERMS",
    "Efficiency",
    "Hardware",
    "TimeCoefficients",
    "hardware",
]

DTYPE_BYTES: Mapping[str, float] = {"bf16": 2.0, "fp8": 1.0}
_KV_BYTES = 2.0  # vLLM's default KV cache dtype is the activations' (bf16), FP8 weights or not

# The efficiency vector's terms, in order; an "inv_" term is 1 / the efficiency of that name.
EFFICIENCY_TERMS = (
    "inv_weight_bandwidth",
    "step_overhead_s",
    "layer_overhead_s",
    "allreduce_latency_s",
    "sequence_overhead_s",
    "inv_decode_compute",
    "inv_kv_bandwidth",
    "inv_prefill_compute",
    "inv_link_bandwidth",
    "inv_attention_compute",
    "prefill_step_s",
)
COEFFICIENTS = (
    "base_s",
    "per_sequence_s",
    "per_context_token_s",
    "per_token_s",
    "per_attention_pair_s",
    "per_step_s",
)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Hardware:
    """Per-GPU physical quantities of one model served on one accelerator at one TP degree and dtype."""

    tp: int
    dtype: str
    layers: int
    weight_bytes: float  # whole model
    weight_bytes_per_gpu: float
    kv_bytes_per_token: float  # whole model (what moves in a P/D transfer)
    kv_bytes_per_token_per_gpu: float
    linear_flops_per_token_per_gpu: float
    attention_flops_per_pair_per_gpu: float
    allreduces_per_step: int
    allreduce_bytes_per_token: float  # per GPU, ring traffic of all the step's all-reduces
    peak_flops: float
    bandwidth: float
    link_bandwidth: float

    def prefill_time(self, tokens: float) -> float:
        """Bare roofline of one prefill of ``tokens`` new tokens: compute or the weight stream, the larger."""
        flops = (
            self.linear_flops_per_token_per_gpu * tokens + self.attention_flops_per_pair_per_gpu * tokens**2
        )
        return max(flops / self.peak_flops, self.weight_bytes_per_gpu / self.bandwidth)

    def decode_step_time(self, batch: float, context: float) -> float:
        """Bare roofline of one decode step of ``batch`` sequences holding ``context`` KV tokens in all."""
        memory = (self.weight_bytes_per_gpu + self.kv_bytes_per_token_per_gpu * context) / self.bandwidth
        flops = (
            self.linear_flops_per_token_per_gpu * batch + 2 * self.attention_flops_per_pair_per_gpu * context
        )
        return max(memory, flops / self.peak_flops)

    def basis(self) -> npt.NDArray[np.float64]:
        """``COEFFICIENTS`` x ``EFFICIENCY_TERMS``: the time-model coefficients per unit of each term."""
        m = np.zeros((len(COEFFICIENTS), len(EFFICIENCY_TERMS)))
        m[0, 0] = self.weight_bytes_per_gpu / self.bandwidth
        m[0, 1] = 1.0
        m[0, 2] = self.layers
        m[0, 3] = self.allreduces_per_step
        m[1, 4] = 1.0
        m[1, 5] = self.linear_flops_per_token_per_gpu / self.peak_flops
        m[1, 8] = self.allreduce_bytes_per_token / self.link_bandwidth
        m[2, 6] = self.kv_bytes_per_token_per_gpu / self.bandwidth
        m[3, 7] = self.linear_flops_per_token_per_gpu / self.peak_flops
        m[3, 8] = self.allreduce_bytes_per_token / self.link_bandwidth
        m[4, 9] = self.attention_flops_per_pair_per_gpu / self.peak_flops
        m[5, 10] = 1.0
        return m


def hardware(arch: Architecture, accelerator: Accelerator, *, tp: int, dtype: str) -> Hardware:
    """The roofline quantities; the caller has checked ``arch.check_tensor_parallel(tp)``."""
    weight_bytes = arch.weight_bytes(DTYPE_BYTES[dtype])
    kv_total = arch.kv_bytes_per_token(_KV_BYTES)
    kv_per_gpu = kv_total * arch.kv_heads_per_rank(tp) / arch.kv_heads
    allreduces = 2 * arch.layers if tp > 1 else 0
    ring = 2.0 * (tp - 1) / tp
    return Hardware(
        tp=tp,
        dtype=dtype,
        layers=arch.layers,
        weight_bytes=weight_bytes,
        weight_bytes_per_gpu=weight_bytes / tp,
        kv_bytes_per_token=kv_total,
        kv_bytes_per_token_per_gpu=kv_per_gpu,
        linear_flops_per_token_per_gpu=arch.linear_flops_per_token / tp,
        attention_flops_per_pair_per_gpu=arch.attention_flops_per_pair / tp,
        allreduces_per_step=allreduces,
        allreduce_bytes_per_token=allreduces * arch.hidden * _KV_BYTES * ring,
        peak_flops=accelerator.compute(dtype).value,
        bandwidth=accelerator.memory_bandwidth.value,
        link_bandwidth=accelerator.interconnect.value,
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Efficiency:
    """How much of the datasheet an engine reaches on one accelerator, and its fixed costs (seconds)."""

    weight_bandwidth: float
    kv_bandwidth: float
    decode_compute: float
    prefill_compute: float
    attention_compute: float
    link_bandwidth: float
    step_overhead_s: float
    layer_overhead_s: float
    allreduce_latency_s: float
    sequence_overhead_s: float
    prefill_step_s: float

    def __post_init__(self) -> None:
        for name in ("weight_bandwidth", "kv_bandwidth", "decode_compute", "prefill_compute",
                     "attention_compute", "link_bandwidth"):  # fmt: skip
            if not 0 < getattr(self, name) <= 1.5:
                raise ValueError(f"efficiency {name} must be in (0, 1.5], got {getattr(self, name)}")
        for name in ("step_overhead_s", "layer_overhead_s", "allreduce_latency_s", "sequence_overhead_s",
                     "prefill_step_s"):  # fmt: skip
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1) seconds, got {getattr(self, name)}")

    def vector(self) -> npt.NDArray[np.float64]:
        return np.array(
            [
                1 / self.weight_bandwidth,
                self.step_overhead_s,
                self.layer_overhead_s,
                self.allreduce_latency_s,
                self.sequence_overhead_s,
                1 / self.decode_compute,
                1 / self.kv_bandwidth,
                1 / self.prefill_compute,
                1 / self.link_bandwidth,
                1 / self.attention_compute,
                self.prefill_step_s,
            ]
        )

    @classmethod
    def from_vector(cls, theta: npt.NDArray[np.float64]) -> Efficiency:
        t = [float(v) for v in theta]
        return cls(
            weight_bandwidth=1 / t[0],
            step_overhead_s=t[1],
            layer_overhead_s=t[2],
            allreduce_latency_s=t[3],
            sequence_overhead_s=t[4],
            decode_compute=1 / t[5],
            kv_bandwidth=1 / t[6],
            prefill_compute=1 / t[7],
            link_bandwidth=1 / t[8],
            attention_compute=1 / t[9],
            prefill_step_s=t[10],
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TimeCoefficients:
    base_s: float
    per_sequence_s: float
    per_context_token_s: float
    per_token_s: float
    per_attention_pair_s: float
    per_step_s: float

    @classmethod
    def of(cls, hw: Hardware, efficiency: Efficiency) -> TimeCoefficients:
        values = hw.basis() @ efficiency.vector()
        return cls(**{name: float(v) for name, v in zip(COEFFICIENTS, values, strict=True)})
