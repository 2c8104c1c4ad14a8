"""The roofline's limits and its mapping onto the profile's time model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from autoscaler.profiles.accelerators import Accelerator, Figure
from autoscaler.profiles.architecture import parse_config
from autoscaler.profiles.roofline import Efficiency, Hardware, TimeCoefficients, hardware

H100 = Accelerator(
    name="H100-SXM-80GB",
    aliases=("h100",),
    peak_flops={
        "bf16": Figure(value=989.4e12, source="datasheet"),
        "fp8": Figure(value=1978.9e12, source="ds"),
    },
    memory_bandwidth=Figure(value=3.35e12, source="datasheet"),
    memory_gib=Figure(value=79.6, source="datasheet"),
    interconnect=Figure(value=450e9, source="datasheet"),
)
LLAMA_3_1_8B = parse_config(
    {
        "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
    }
)  # fmt: skip
EFFICIENCY = Efficiency(
    weight_bandwidth=0.9,
    kv_bandwidth=0.9,
    decode_compute=1.0,
    prefill_compute=0.8,
    attention_compute=0.5,
    link_bandwidth=0.7,
    step_overhead_s=1e-3,
    layer_overhead_s=5e-5,
    allreduce_latency_s=1e-5,
    sequence_overhead_s=3e-6,
    prefill_step_s=0.0,
)


def _hw(tp: int = 1, dtype: str = "bf16") -> Hardware:
    return hardware(LLAMA_3_1_8B, H100, tp=tp, dtype=dtype)


def test_prefill_is_compute_bound_past_the_ridge_and_weight_bound_below_it() -> None:
    hw = _hw()
    flops = hw.linear_flops_per_token_per_gpu
    weights = hw.weight_bytes_per_gpu / hw.bandwidth
    # Long prompts: all arithmetic (linear layers plus attention's quadratic share).
    n = 8192
    assert hw.prefill_time(n) == pytest.approx(
        (flops * n + hw.attention_flops_per_pair_per_gpu * n * n) / 989.4e12
    )
    # A few tokens: the weight stream sets the time, whatever the count.
    assert hw.prefill_time(1) == hw.prefill_time(16) == pytest.approx(weights)
    # The ridge (tokens per pass where both take as long) is peak / bandwidth x bytes per FLOP: about 295.
    ridge = weights * 989.4e12 / flops
    assert 250 < ridge < 350


def test_decode_is_bandwidth_bound_until_a_batch_of_hundreds() -> None:
    hw = _hw()
    for batch in (1, 8, 64):
        context = batch * 1000
        memory = (hw.weight_bytes_per_gpu + hw.kv_bytes_per_token_per_gpu * context) / hw.bandwidth
        assert hw.decode_step_time(batch, context) == pytest.approx(memory)
    # Enormous batches of short sequences end up compute-bound.
    assert hw.decode_step_time(4096, 4096) == pytest.approx(
        (hw.linear_flops_per_token_per_gpu * 4096 + 2 * hw.attention_flops_per_pair_per_gpu * 4096) / 989.4e12
    )


def test_tensor_parallelism_splits_weights_and_kv_and_adds_two_all_reduces_per_layer() -> None:
    one, four = _hw(1), _hw(4)
    assert four.weight_bytes_per_gpu == pytest.approx(one.weight_bytes_per_gpu / 4)
    assert four.kv_bytes_per_token_per_gpu == pytest.approx(one.kv_bytes_per_token_per_gpu / 4)
    assert (one.allreduces_per_step, four.allreduces_per_step) == (0, 64)
    assert four.allreduce_bytes_per_token == pytest.approx(64 * 4096 * 2 * 2 * 3 / 4)


def test_fp8_halves_the_weights_and_doubles_the_peak() -> None:
    bf16, fp8 = _hw(dtype="bf16"), _hw(dtype="fp8")
    assert fp8.weight_bytes == pytest.approx(bf16.weight_bytes / 2)
    assert fp8.peak_flops == pytest.approx(2 * bf16.peak_flops, rel=1e-3)  # the datasheet's 1,979 vs 989.4
    assert fp8.kv_bytes_per_token == bf16.kv_bytes_per_token  # vLLM's KV stays bf16 unless told otherwise


def test_time_coefficients_are_the_physical_times_over_the_efficiencies_plus_overheads() -> None:
    hw = _hw(tp=2)
    c = TimeCoefficients.of(hw, EFFICIENCY)
    assert c.base_s == pytest.approx(
        hw.weight_bytes_per_gpu / (0.9 * 3.35e12) + 1e-3 + 32 * 5e-5 + hw.allreduces_per_step * 1e-5
    )
    assert c.per_sequence_s == pytest.approx(
        3e-6 + hw.linear_flops_per_token_per_gpu / 989.4e12 + hw.allreduce_bytes_per_token / (0.7 * 450e9)
    )
    assert c.per_context_token_s == pytest.approx(hw.kv_bytes_per_token_per_gpu / (0.9 * 3.35e12))
    assert c.per_token_s == pytest.approx(
        hw.linear_flops_per_token_per_gpu / (0.8 * 989.4e12) + hw.allreduce_bytes_per_token / (0.7 * 450e9)
    )
    assert c.per_attention_pair_s == pytest.approx(hw.attention_flops_per_pair_per_gpu / (0.5 * 989.4e12))


def test_an_efficiency_vector_round_trips() -> None:
    back = Efficiency.from_vector(EFFICIENCY.vector())
    assert dataclasses.astuple(back) == pytest.approx(dataclasses.astuple(EFFICIENCY))
    assert np.all(EFFICIENCY.vector() >= 0)


@pytest.mark.parametrize("field", ["weight_bandwidth", "prefill_compute"])
def test_an_efficiency_outside_its_bounds_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(EFFICIENCY, **{field: 0.0})
