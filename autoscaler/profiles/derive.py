"""A profile from a model's architecture, an accelerator's datasheet and the engine's knobs ("derived").

The time model comes from the roofline (``roofline.py``) at the accelerator's fitted efficiencies
(``Calibration``, stored in ``models/efficiency.yaml`` with where each was fitted); the KV capacity from
memory: ``gpu_memory_utilization`` of each GPU, less its share of the weights and an activation reserve
(vLLM's profiling run peaks with ``max_num_batched_tokens`` tokens in flight, so the reserve scales with
it), divided by the KV bytes a token holds on one GPU. The engine's knobs (block size, max sequences,
batched tokens) are the operator's, recorded as given. Every number says how it was obtained.
"""

from __future__ import annotations

import dataclasses

from autoscaler.profiles.accelerators import Accelerator
from autoscaler.profiles.architecture import Architecture, ArchitectureError
from autoscaler.profiles.calibration import FactorFit
from autoscaler.profiles.roofline import Efficiency, Hardware, TimeCoefficients, hardware
from autoscaler.profiles.schema import (
    ClientLatency,
    DecodeModel,
    KvCache,
    KvTransfer,
    Limits,
    PositiveQuantity,
    PrefillModel,
    Profile,
    ProvenanceKind,
    Quantity,
    Startup,
    StepModel,
)

__all__ = ["Calibration", "EngineKnobs", "derive_profile"]

_GIB = 2.0**30
_RESERVE_AT_TOKENS = 2048  # the token budget the reserve was fitted at
_NIC_BYTES_PER_S = 5.0e10  # one 400 Gb/s NIC per GPU for P/D KV transfer (assumed, as the shipped profiles)
_DERIVED = ProvenanceKind.DERIVED
_ASSUMED = ProvenanceKind.ASSUMED


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EngineKnobs:
    """The engine flags the operator runs with (vLLM's defaults for the OpenAI server on large GPUs)."""

    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    block_size: int = 16
    gpu_memory_utilization: float = 0.9
    max_model_len: int = 4096

    def __post_init__(self) -> None:
        if not (1 <= self.max_num_seqs <= 65536 and 1 <= self.max_num_batched_tokens <= 1 << 20):
            raise ValueError("max_num_seqs and max_num_batched_tokens out of bounds")
        if self.block_size not in (1, 8, 16, 32, 64, 128) or not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError("block size must be a power of two up to 128, gpu_memory_utilization in (0, 1]")
        if not 1 <= self.max_model_len <= 1 << 24:
            raise ValueError("max_model_len out of bounds")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Calibration:
    """An accelerator's fitted efficiencies and the engine's fixed costs, with where they come from."""

    accelerator: str
    efficiency: Efficiency
    first_token_s: float
    first_token_steps: float
    activation_reserve_gib: float  # per GPU at a budget of 2048 batched tokens
    source: str


def _q(value: float, kind: ProvenanceKind, source: str) -> Quantity:
    return Quantity(value=value, kind=kind, source=source)


def _p(value: float, kind: ProvenanceKind, source: str) -> PositiveQuantity:
    return PositiveQuantity(value=value, kind=kind, source=source)


def kv_capacity_tokens(
    arch: Architecture, hw: Hardware, accelerator: Accelerator, knobs: EngineKnobs, reserve_gib: float
) -> float:
    """Tokens of KV one replica holds (all TP ranks hold a slice of every token)."""
    budget = knobs.gpu_memory_utilization * accelerator.memory_gib.value * _GIB
    reserve = reserve_gib * _GIB * knobs.max_num_batched_tokens / _RESERVE_AT_TOKENS
    free = budget - hw.weight_bytes_per_gpu - reserve
    tokens = free / hw.kv_bytes_per_token_per_gpu
    if tokens < knobs.max_model_len:
        raise ArchitectureError(
            f"{hw.weight_bytes_per_gpu / _GIB:.1f} GiB of weights per GPU leave room for "
            f"{max(0, int(tokens))} KV tokens on {accelerator.name} at TP {hw.tp}, below max_model_len "
            f"{knobs.max_model_len}"
        )
    return tokens


def derive_profile(
    *,
    model: str,
    arch: Architecture,
    accelerator: Accelerator,
    tp: int,
    dtype: str,
    knobs: EngineKnobs,
    calibration: Calibration,
    factors: FactorFit | None = None,
    config_source: str,
) -> Profile:
    """The derived profile; ``ArchitectureError`` when TP does not divide the heads or it does not fit."""
    arch.check_tensor_parallel(tp)
    hw = hardware(arch, accelerator, tp=tp, dtype=dtype)
    c = TimeCoefficients.of(hw, calibration.efficiency)
    fitted = ""
    if factors is not None:
        c = factors.apply(c)
        fitted = (
            f"; x{factors.step:.3f} step, x{factors.decode:.3f} decode, x{factors.prefill:.3f} prefill "
            f"fitted to a measured run (TPOT error {factors.error_before:.1%} -> {factors.error_after:.1%})"
        )
    eff = calibration.efficiency
    cal = f"efficiencies of {calibration.accelerator} ({calibration.source}){fitted}"
    weights_gib = hw.weight_bytes_per_gpu / _GIB
    tflops = f"{hw.peak_flops / 1e12:.0f} TFLOP/s"
    tbps = f"{hw.bandwidth / 1e12:.2f} TB/s"
    gflop = f"{hw.linear_flops_per_token_per_gpu / 1e9:.2f} GFLOP/token/GPU"
    base_src = (
        f"{weights_gib:.2f} GiB weights/GPU over {eff.weight_bandwidth:.2f} x {tbps} "
        f"+ {eff.step_overhead_s * 1e3:.2f} ms/step + {arch.layers} layers x "
        f"{eff.layer_overhead_s * 1e6:.1f} us + {hw.allreduces_per_step} all-reduces x "
        f"{eff.allreduce_latency_s * 1e6:.1f} us; {cal}"
    )
    capacity = kv_capacity_tokens(arch, hw, accelerator, knobs, calibration.activation_reserve_gib)
    notes = (
        f"Derived by autoscaler profile derive from {config_source}: "
        f"{arch.total_params / 1e9:.2f}B parameters ({arch.active_params / 1e9:.2f}B active), "
        f"{arch.layers} layers, {arch.kv_heads} KV heads of {arch.head_dim}, on {tp} x {accelerator.name} "
        f"{dtype} ({accelerator.memory_bandwidth.source}; {accelerator.compute(dtype).source})."
    )
    return Profile(
        model=model,
        accelerator=accelerator.name,
        tensor_parallel=tp,
        gpus_per_replica=tp,
        step=StepModel(base_s=_p(c.base_s, _DERIVED, base_src)),
        prefill=PrefillModel(
            per_token_s=_p(
                c.per_token_s,
                _DERIVED,
                f"{gflop} over {eff.prefill_compute:.2f} x {tflops} + all-reduce traffic over "
                f"{eff.link_bandwidth:.2f} x {hw.link_bandwidth / 1e9:.0f} GB/s; {cal}",
            ),
            per_attention_pair_s=_q(
                c.per_attention_pair_s,
                _DERIVED,
                f"2 x {arch.full_attention_layers} layers x {arch.attention_width} FLOP per pair / {tp} "
                f"GPUs over {eff.attention_compute:.2f} x {tflops}; {cal}",
            ),
            per_step_s=_q(c.per_step_s, _DERIVED, f"fixed cost of a step that prefills; {cal}"),
        ),
        decode=DecodeModel(
            per_sequence_s=_q(
                c.per_sequence_s,
                _DERIVED,
                f"{eff.sequence_overhead_s * 1e6:.1f} us + {gflop} (active) over "
                f"{eff.decode_compute:.2f} x {tflops} + its all-reduce traffic; {cal}",
            ),
            per_context_token_s=_q(
                c.per_context_token_s,
                _DERIVED,
                f"{hw.kv_bytes_per_token_per_gpu:.0f} KV bytes/token/GPU over {eff.kv_bandwidth:.2f} x "
                f"{tbps}; {cal}",
            ),
        ),
        kv_cache=KvCache(
            capacity_tokens=_p(
                capacity,
                _DERIVED,
                f"({knobs.gpu_memory_utilization} x {accelerator.memory_gib.value} GiB - {weights_gib:.2f} "
                f"GiB weights - {calibration.activation_reserve_gib:.2f} GiB x "
                f"{knobs.max_num_batched_tokens}/2048 activations) / "
                f"{hw.kv_bytes_per_token_per_gpu:.0f} B per token per GPU",
            ),
            block_size=_p(knobs.block_size, _ASSUMED, "engine knob (--block-size) given to profile derive"),
            bytes_per_token=_p(
                hw.kv_bytes_per_token,
                _DERIVED,
                f"2 x {arch.full_attention_layers} layers x {arch.kv_heads} KV heads x {arch.head_dim} x "
                "2 bytes",
            ),
        ),
        kv_transfer=KvTransfer(
            bandwidth_bytes_per_s=_p(tp * _NIC_BYTES_PER_S, _ASSUMED, f"{tp} x one 400 Gb/s NIC per GPU"),
            latency_s=_q(0.002, _ASSUMED, "NIXL/RDMA set-up per transfer, order of milliseconds"),
        ),
        limits=Limits(
            max_num_seqs=_p(
                knobs.max_num_seqs, _ASSUMED, "engine knob (--max-num-seqs) given to profile derive"
            ),
            max_num_batched_tokens=_p(
                knobs.max_num_batched_tokens,
                _ASSUMED,
                "engine knob (--max-num-batched-tokens) given to derive",
            ),
        ),
        startup=Startup(
            mean_s=_p(
                90.0 + 1.5 * hw.weight_bytes / 1e9,
                _ASSUMED,
                "90 s pod start + 1.5 s per GB of weights (the shipped 8B and 70B profiles' 120 s and 300 s)",
            ),
            spread_s=_q(30.0, _ASSUMED, "BLIS autoscaler provisioning delay 120 +/- 30 s"),
        ),
        client=ClientLatency(
            first_token_s=_q(
                calibration.first_token_s, _DERIVED, f"client's TTFT beyond the engine's; {cal}"
            ),
            first_token_steps=_q(
                calibration.first_token_steps,
                _ASSUMED,
                "the stream delivers the first token with the second (ground-truth README, ITL caveat)",
            ),
        ),
        notes=notes,
    )
