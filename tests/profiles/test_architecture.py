"""Architecture arithmetic from config.json against hand-computed parameter counts, and refusals."""

from __future__ import annotations

import pytest

from autoscaler.profiles.architecture import ArchitectureError, parse_config

LLAMA_2_7B = {
    "model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000, "tie_word_embeddings": False,
}  # fmt: skip
LLAMA_2_70B = {
    "model_type": "llama", "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
    "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 32000,
}  # fmt: skip
MIXTRAL_8X7B = {
    "model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32000, "num_local_experts": 8,
    "num_experts_per_tok": 2, "sliding_window": None, "router_aux_loss_coef": 0.02,
}  # fmt: skip
QWEN3_30B_A3B = {
    "model_type": "qwen3_moe", "hidden_size": 2048, "intermediate_size": 6144, "moe_intermediate_size": 768,
    "num_hidden_layers": 48, "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128,
    "vocab_size": 151936, "num_experts": 128, "num_experts_per_tok": 8, "decoder_sparse_step": 1,
    "mlp_only_layers": [], "norm_topk_prob": True,
}  # fmt: skip


def _dense(layers: int, hidden: int, q: int, kv: int, mlp: int, vocab: int) -> int:
    """By hand: q, k, v, o projections; gate, up, down; two norms per layer; final norm; two embeddings."""
    layer = hidden * (q + 2 * kv) + q * hidden + 3 * hidden * mlp + 2 * hidden
    return layers * layer + hidden + 2 * vocab * hidden


@pytest.mark.parametrize(
    ("config", "total", "active", "published"),
    [
        (LLAMA_2_7B, _dense(32, 4096, 4096, 4096, 11008, 32000), None, 6_738_415_616),
        (LLAMA_2_70B, _dense(80, 8192, 8192, 1024, 28672, 32000), None, 68_976_648_192),
        (
            MIXTRAL_8X7B,
            # attention as dense; MLP = 8 experts x (gate, up, down) + the router (4096 x 8)
            32 * (4096 * 6144 + 4096 * 4096 + 8 * 3 * 4096 * 14336 + 4096 * 8 + 2 * 4096)
            + 4096
            + 2 * 32000 * 4096,
            32 * (4096 * 6144 + 4096 * 4096 + 2 * 3 * 4096 * 14336 + 4096 * 8 + 2 * 4096)
            + 4096
            + 2 * 32000 * 4096,
            46_702_792_704,
        ),
        (
            QWEN3_30B_A3B,
            # q 32x128, k and v 4x128 (5120 wide in all), o; q/k norms of 128 each;
            # 128 experts of width 768 (8 active); router 2048 x 128
            48 * (2048 * 5120 + 4096 * 2048 + 256 + 128 * 3 * 2048 * 768 + 2048 * 128 + 2 * 2048)
            + 2048
            + 2 * 151936 * 2048,
            48 * (2048 * 5120 + 4096 * 2048 + 256 + 8 * 3 * 2048 * 768 + 2048 * 128 + 2 * 2048)
            + 2048
            + 2 * 151936 * 2048,
            30_532_122_624,
        ),
    ],
    ids=["Llama-2-7B", "Llama-2-70B", "Mixtral-8x7B", "Qwen3-30B-A3B"],
)
def test_parameter_counts_match_the_hand_computed_and_published_ones(
    config: dict[str, object], total: int, active: int | None, published: int
) -> None:
    arch = parse_config(config)
    assert arch.total_params == total == published
    assert arch.active_params == (total if active is None else active)


@pytest.mark.parametrize(
    ("config", "kv_bytes"),
    [
        (LLAMA_2_7B, 2 * 32 * 32 * 128 * 2),  # no grouped-query attention: every head keeps its KV
        (LLAMA_2_70B, 2 * 80 * 8 * 128 * 2),  # GQA: 8 KV heads of 64 query heads
        (QWEN3_30B_A3B, 2 * 48 * 4 * 128 * 2),
    ],
    ids=["MHA", "GQA", "MoE with GQA"],
)
def test_kv_bytes_per_token_count_only_the_kv_heads(config: dict[str, object], kv_bytes: int) -> None:
    assert parse_config(config).kv_bytes_per_token(2) == kv_bytes


def test_moe_weights_stream_every_expert_but_a_token_computes_only_its_own() -> None:
    arch = parse_config(MIXTRAL_8X7B)
    assert arch.weight_bytes(2) == 2 * arch.total_params
    embedding_lookup = 32000 * 4096
    assert arch.linear_flops_per_token == 2 * (arch.active_params - embedding_lookup)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({**LLAMA_2_7B, "kv_lora_rank": 512}, "unknown architecture field 'kv_lora_rank'"),
        ({**LLAMA_2_7B, "model_type": "deepseek_v3"}, "unknown architecture field 'model_type'"),
        ({k: v for k, v in LLAMA_2_7B.items() if k != "hidden_size"}, "no 'hidden_size'"),
        ({**LLAMA_2_7B, "num_hidden_layers": -1}, "'num_hidden_layers' must be a positive integer"),
        ({**QWEN3_30B_A3B, "decoder_sparse_step": 2}, "interleaved"),
        ({**MIXTRAL_8X7B, "num_experts_per_tok": 9}, "exceeds"),
    ],
    ids=["unknown field", "unknown model type", "missing field", "negative", "interleaved MoE", "top-k"],
)
def test_configs_it_cannot_model_are_refused_naming_the_field(
    config: dict[str, object], message: str
) -> None:
    with pytest.raises(ArchitectureError, match=message):
        parse_config(config)


@pytest.mark.parametrize(
    ("config", "tp", "ok"),
    [(LLAMA_2_70B, 8, True), (LLAMA_2_70B, 3, False), (QWEN3_30B_A3B, 8, True), (LLAMA_2_7B, 64, False)],
    ids=["8 divides 64 heads", "3 does not", "KV heads replicated past 4", "more ranks than heads"],
)
def test_tensor_parallelism_must_divide_the_heads(config: dict[str, object], tp: int, ok: bool) -> None:
    arch = parse_config(config)
    if ok:
        arch.check_tensor_parallel(tp)
    else:
        with pytest.raises(ArchitectureError, match=r"does not divide|neither divides"):
            arch.check_tensor_parallel(tp)
