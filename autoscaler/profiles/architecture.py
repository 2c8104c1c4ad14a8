"""A transformer's architecture from its Hugging Face ``config.json``: parameters, bytes and FLOPs per token.

What a serving profile needs from the architecture is arithmetic: how many bytes of weights every decode
step streams, how many FLOPs a prompt token costs in the linear layers (only the experts it is routed to,
for a mixture of experts), how many per attention pair, and how many bytes of KV cache a token holds (grouped
query attention: only the KV heads). This module reads the few fields that set those numbers and refuses a
config it does not understand: a field that is not in ``_KNOWN_FIELDS`` may change the arithmetic
(multi-head latent attention's ``kv_lora_rank``, a vision tower's ``vision_config``), and a derivation that
silently ignored it would be wrong without saying so. Pure: the caller reads the file.

Counts include every weight matrix, norm vector and embedding table; biases only where the family has them
(gpt-oss: attention and expert biases). The parameter counts match the ones published for the models in the
tests (``tests/profiles/test_architecture.py``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

__all__ = ["Architecture", "ArchitectureError", "parse_config"]

_DENSE = frozenset({"llama", "mistral", "qwen2", "qwen3"})
_MOE = frozenset({"mixtral", "qwen3_moe", "gpt_oss"})

# Fields that do not change parameter counts, FLOPs or KV bytes (token ids, initialisation, dropout, the
# rotary embedding's frequencies, the router's training loss, tokenizer and library versions).
_IGNORED_FIELDS = frozenset(
    {
        "architectures", "bos_token_id", "eos_token_id", "pad_token_id", "hidden_act", "initializer_range",
        "max_position_embeddings", "rms_norm_eps", "rope_theta", "rope_scaling", "torch_dtype", "dtype",
        "transformers_version", "use_cache", "pretraining_tp", "attention_dropout", "output_router_logits",
        "router_aux_loss_coef", "router_jitter_noise", "norm_topk_prob", "max_window_layers", "_name_or_path",
        "swiglu_limit", "initial_context_length", "use_sliding_window", "sliding_window", "layer_types",
        "attention_bias", "mlp_bias", "quantization_config", "experts_per_token",
    }
)  # fmt: skip
_USED_FIELDS = frozenset(
    {
        "model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "head_dim", "intermediate_size", "vocab_size", "tie_word_embeddings", "num_local_experts",
        "num_experts", "num_experts_per_tok", "moe_intermediate_size", "decoder_sparse_step",
        "mlp_only_layers",
    }
)  # fmt: skip
_KNOWN_FIELDS = _IGNORED_FIELDS | _USED_FIELDS
_MXFP4_BYTES_PER_PARAM = 4.25 / 8  # 4-bit values plus one 8-bit scale per 32 (OCP MX spec)


class ArchitectureError(ValueError):
    """A config.json the derivation cannot turn into numbers (one line, naming the field)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Architecture:
    model_type: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int  # dense MLP width (MoE: each expert's, see expert_intermediate)
    vocab: int
    tied_embeddings: bool
    experts: int = 0  # 0: dense
    experts_per_token: int = 0
    expert_intermediate: int = 0
    sliding_window: int = 0  # gpt-oss: its sliding-attention layers keep at most this many KV tokens
    sliding_layers: int = 0
    attention_bias: bool = False
    expert_bias: bool = False
    expert_bytes_per_param: float | None = None  # None: the serving dtype (gpt-oss ships MXFP4 experts)

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    # --- parameter counts --------------------------------------------------------------------------------

    @property
    def attention_params_per_layer(self) -> int:
        q = self.heads * self.head_dim
        kv = self.kv_heads * self.head_dim
        weights = self.hidden * (q + 2 * kv) + q * self.hidden
        bias = (q + 2 * kv + self.hidden) if self.attention_bias else 0
        qk_norm = 2 * self.head_dim if self.model_type in ("qwen3", "qwen3_moe") else 0
        sinks = self.heads if self.model_type == "gpt_oss" else 0
        return weights + bias + qk_norm + sinks

    @property
    def expert_params(self) -> int:
        """One expert's gated MLP (gate, up, down), with its biases where the family has them."""
        width = self.expert_intermediate
        bias = (2 * width + self.hidden) if self.expert_bias else 0  # gate+up: 2*width, down: hidden
        return 3 * self.hidden * width + bias

    @property
    def router_params_per_layer(self) -> int:
        return self.hidden * self.experts + (self.experts if self.model_type == "gpt_oss" else 0)

    @property
    def mlp_params_per_layer(self) -> int:
        """All MLP weights of one layer (every expert of a MoE)."""
        if self.is_moe:
            return self.experts * self.expert_params + self.router_params_per_layer
        return 3 * self.hidden * self.intermediate

    @property
    def active_mlp_params_per_layer(self) -> int:
        """The MLP weights one token runs through (its routed experts only)."""
        if self.is_moe:
            return self.experts_per_token * self.expert_params + self.router_params_per_layer
        return self.mlp_params_per_layer

    @property
    def norm_params(self) -> int:
        return self.layers * 2 * self.hidden + self.hidden

    @property
    def embedding_params(self) -> int:
        """Input embedding plus the output projection (once when they are tied)."""
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    @property
    def total_params(self) -> int:
        per_layer = self.attention_params_per_layer + self.mlp_params_per_layer
        return self.layers * per_layer + self.norm_params + self.embedding_params

    @property
    def active_params(self) -> int:
        per_layer = self.attention_params_per_layer + self.active_mlp_params_per_layer
        return self.layers * per_layer + self.norm_params + self.embedding_params

    @property
    def expert_params_total(self) -> int:
        return self.layers * self.experts * self.expert_params if self.is_moe else 0

    # --- what a forward pass costs -----------------------------------------------------------------------

    def weight_bytes(self, bytes_per_param: float) -> float:
        """Bytes of weights to hold (and, per decode step, to stream): experts at their own precision."""
        if self.expert_bytes_per_param is None:
            return self.total_params * bytes_per_param
        experts = self.expert_params_total
        return (self.total_params - experts) * bytes_per_param + experts * self.expert_bytes_per_param

    @property
    def linear_flops_per_token(self) -> float:
        """2 FLOPs per active weight a token multiplies, without the input embedding (a table look-up).

        The output projection is counted: vLLM computes logits for the last token of a prompt only, but
        for every decoding sequence; a prefill token thus costs slightly less, absorbed by the efficiency.
        """
        lookup = self.vocab * self.hidden
        return 2.0 * (self.active_params - lookup if not self.tied_embeddings else self.active_params)

    @property
    def attention_width(self) -> int:
        return self.heads * self.head_dim

    @property
    def full_attention_layers(self) -> int:
        return self.layers - self.sliding_layers

    @property
    def attention_flops_per_pair(self) -> float:
        """FLOPs per unit of the profile's pair count ((h+n)^2 - h^2): 2·L·d_attn (schema.py's docstring).

        Sliding-window layers attend to at most ``sliding_window`` keys; at the prompt lengths served they
        are a small share, so only full-attention layers are counted.
        """
        return 2.0 * self.full_attention_layers * self.attention_width

    def kv_bytes_per_token(self, bytes_per_element: float) -> float:
        """KV cache bytes per token of context, all layers and KV heads (a long context's marginal token)."""
        return 2.0 * self.full_attention_layers * self.kv_heads * self.head_dim * bytes_per_element

    def check_tensor_parallel(self, tp: int) -> None:
        """vLLM shards attention heads over TP ranks: the query heads must divide evenly."""
        if tp < 1:
            raise ArchitectureError(f"tensor parallelism must be >= 1, got {tp}")
        if self.heads % tp:
            raise ArchitectureError(
                f"tensor parallelism {tp} does not divide num_attention_heads {self.heads}"
            )
        if self.kv_heads % tp and tp % self.kv_heads:
            raise ArchitectureError(
                f"tensor parallelism {tp} and num_key_value_heads {self.kv_heads}: neither divides the other"
            )

    def kv_heads_per_rank(self, tp: int) -> int:
        """KV heads each rank holds (replicated when TP exceeds the KV heads, as vLLM does)."""
        return max(1, self.kv_heads // tp)


def _int(config: Mapping[str, object], key: str, *, default: int | None = None) -> int:
    value = config.get(key, default)
    if value is None:
        raise ArchitectureError(f"config.json has no {key!r}")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 10**7:
        raise ArchitectureError(f"config.json {key!r} must be a positive integer below 1e7, got {value!r}")
    return value


def parse_config(config: Mapping[str, object]) -> Architecture:
    """An ``Architecture`` from a config.json mapping; ``ArchitectureError`` on anything it cannot model."""
    unknown = sorted(set(config) - _KNOWN_FIELDS)
    if unknown:
        raise ArchitectureError(f"unknown architecture field {unknown[0]!r} in config.json")
    model_type = config.get("model_type")
    if model_type not in _DENSE | _MOE:
        known = ", ".join(sorted(_DENSE | _MOE))
        raise ArchitectureError(f"unknown architecture field 'model_type': {model_type!r} (known: {known})")
    assert isinstance(model_type, str)
    if config.get("decoder_sparse_step", 1) != 1 or config.get("mlp_only_layers", []) not in ([], None):
        raise ArchitectureError("config.json: MoE layers interleaved with dense ones are not modelled")
    hidden = _int(config, "hidden_size")
    heads = _int(config, "num_attention_heads")
    head_dim = _int(config, "head_dim", default=hidden // heads if hidden % heads == 0 else None)
    layers = _int(config, "num_hidden_layers")
    common = {
        "model_type": model_type,
        "layers": layers,
        "hidden": hidden,
        "heads": heads,
        "kv_heads": _int(config, "num_key_value_heads", default=heads),
        "head_dim": head_dim,
        "intermediate": _int(config, "intermediate_size"),
        "vocab": _int(config, "vocab_size"),
        "tied_embeddings": bool(config.get("tie_word_embeddings", False)),
    }
    if model_type in _DENSE:
        return Architecture(**common, attention_bias=model_type == "qwen2")  # type: ignore[arg-type]
    experts = _int(config, "num_local_experts" if "num_local_experts" in config else "num_experts")
    per_token = _int(config, "num_experts_per_tok")
    if per_token > experts:
        raise ArchitectureError(f"num_experts_per_tok {per_token} exceeds the {experts} experts")
    moe: dict[str, object] = {
        "experts": experts,
        "experts_per_token": per_token,
        "expert_intermediate": _int(config, "moe_intermediate_size", default=int(common["intermediate"])),  # type: ignore[call-overload]
    }
    if model_type == "gpt_oss":
        layer_types = config.get("layer_types") or []
        if not isinstance(layer_types, list):
            raise ArchitectureError("config.json 'layer_types' must be a list")
        quant = config.get("quantization_config") or {}
        mxfp4 = isinstance(quant, Mapping) and quant.get("quant_method") == "mxfp4"
        moe |= {
            "sliding_window": _int(config, "sliding_window", default=128),
            "sliding_layers": sum(1 for kind in layer_types if kind == "sliding_attention"),
            "attention_bias": True,
            "expert_bias": True,
            "expert_bytes_per_param": _MXFP4_BYTES_PER_PARAM if mxfp4 else None,
        }
    elif config.get("quantization_config") is not None:
        raise ArchitectureError("config.json 'quantization_config' is modelled for gpt-oss's MXFP4 only")
    arch = Architecture(**common, **moe)  # type: ignore[arg-type]
    if not math.isfinite(arch.total_params):
        raise ArchitectureError("config.json describes a model too large to count")
    return arch
