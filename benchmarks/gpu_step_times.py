"""Llama-3.1-8B's forward-pass times on a real GPU, against the time model our H100 profile assumes.

The shipped profiles' time models (``models/``) come from published figures: prefill per token from a
roofline at an assumed MFU, decode per sequence from llm-d's fitted chart default, decode per context
token from KV bytes over HBM bandwidth. This benchmark checks them against arithmetic run on a real
accelerator, in two steps:

1. ``--measure`` (on a machine with a CUDA GPU and PyTorch; needs nothing else of ours): a Llama-3.1-8B
   shaped model (32 layers, 4096 wide, 32 query / 8 KV heads of 128, MLP 14336, vocabulary 128256) with
   random bf16 weights. It times single-sequence prefills of n tokens (cuBLAS GEMMs and the flash causal
   attention kernel; logits for the last token only, as vLLM computes them) and decode steps of B
   sequences holding c KV tokens each (attention over a contiguous KV cache, the bound a paged one
   approaches; logits for every sequence), each step replayed as a CUDA graph, as vLLM runs its steps.
   Writes the samples as JSON, in the shape ``autoscaler profile --samples`` writes them.
2. the default (anywhere our package is installed): fits the profile's time model to those samples with
   the same fit ``autoscaler profile`` uses, and sets the measured prefill and decode times beside what the
   H100 profile predicts. The H200 has the H100's arithmetic (989 TFLOP/s dense bf16) and 1.43x its memory
   bandwidth (4.8 vs 3.35 TB/s), so prefill compares one to one and decode, memory-bound, compares with
   the H100 profile's step time scaled by the bandwidth ratio.

What it does not measure: vLLM's scheduler, sampler and HTTP front end (fixed milliseconds per step on top
of the kernels), paged-attention overheads, and real weights (timings do not depend on the values).

    python benchmarks/gpu_step_times.py --measure --samples FILE      (on the GPU machine)
    python benchmarks/gpu_step_times.py --samples FILE [--out FILE]   (here: fit and compare)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# Llama-3.1-8B (config.json of meta-llama/Llama-3.1-8B-Instruct).
LAYERS, HIDDEN, HEADS, KV_HEADS, HEAD_DIM, MLP, VOCAB = 32, 4096, 32, 8, 128, 14336, 128256
PREFILL_TOKENS = (128, 256, 512, 1024, 2048, 4096, 8192)
DECODE_BATCHES = (1, 8, 32, 64, 128, 256)
DECODE_CONTEXTS = (512, 2048, 8192)  # KV tokens per sequence
MAX_KV_TOKENS = 600_000  # a batch holding more is skipped (78 GB of KV beside 16 GB of weights)
H100_BANDWIDTH, H200_BANDWIDTH = 3.35e12, 4.8e12  # bytes/s, datasheets (performance-and-models.md)
DEFAULT_SAMPLES = Path(__file__).parent / "results" / "gpu_step_times_samples.json"


# --- step 1: measure (torch only) -----------------------------------------------------------------------


def measure(*, quick: bool) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    dev, dt = torch.device("cuda"), torch.bfloat16

    def weight(rows: int, cols: int) -> torch.Tensor:
        return torch.randn(rows, cols, device=dev, dtype=dt) * 0.02

    layers = [
        {
            "qkv": weight((HEADS + 2 * KV_HEADS) * HEAD_DIM, HIDDEN),
            "o": weight(HIDDEN, HEADS * HEAD_DIM),
            "gate_up": weight(2 * MLP, HIDDEN),
            "down": weight(HIDDEN, MLP),
            "ln1": torch.ones(HIDDEN, device=dev, dtype=dt),
            "ln2": torch.ones(HIDDEN, device=dev, dtype=dt),
        }
        for _ in range(LAYERS)
    ]
    embed, lm_head = weight(VOCAB, HIDDEN), weight(VOCAB, HIDDEN)
    final_norm = torch.ones(HIDDEN, device=dev, dtype=dt)
    q_size, kv_size = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    group = HEADS // KV_HEADS  # query heads per KV head

    def rms(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (HIDDEN,), w, 1e-5)

    def mlp(x: torch.Tensor, layer: dict[str, torch.Tensor]) -> torch.Tensor:
        gate, up = F.linear(rms(x, layer["ln2"]), layer["gate_up"]).chunk(2, dim=-1)
        return x + F.linear(F.silu(gate) * up, layer["down"])

    def prefill(tokens: torch.Tensor) -> torch.Tensor:
        n = tokens.shape[0]
        x = embed[tokens]
        for layer in layers:
            q, k, v = F.linear(rms(x, layer["ln1"]), layer["qkv"]).split([q_size, kv_size, kv_size], dim=-1)
            # (1, heads, n, 128), KV heads repeated for the query heads, under the flash kernel only: SDPA's
            # fallback materialises the n x n scores, quadratic memory traffic that no engine pays.
            q = q.view(1, n, HEADS, HEAD_DIM).transpose(1, 2)
            k = k.view(1, n, KV_HEADS, HEAD_DIM).transpose(1, 2).repeat_interleave(group, dim=1)
            v = v.view(1, n, KV_HEADS, HEAD_DIM).transpose(1, 2).repeat_interleave(group, dim=1)
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + F.linear(a.transpose(1, 2).reshape(n, q_size), layer["o"])
            x = mlp(x, layer)
        return F.linear(rms(x[-1:], final_norm), lm_head)

    def decode_step(tokens: torch.Tensor, cache: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        # One new token per sequence. The 4 query heads that share a KV head attend to the same keys, so
        # they are laid out as 4 query rows of that KV head: exact GQA with no repeated KV in memory.
        b = tokens.shape[0]
        x = embed[tokens]
        for layer, (keys, values) in zip(layers, cache, strict=True):
            q, _k, _v = F.linear(rms(x, layer["ln1"]), layer["qkv"]).split([q_size, kv_size, kv_size], -1)
            q = q.view(b, KV_HEADS, group, HEAD_DIM)
            a = F.scaled_dot_product_attention(q, keys, values)
            x = x + F.linear(a.reshape(b, q_size), layer["o"])
            x = mlp(x, layer)
        return F.linear(rms(x, final_norm), lm_head)

    def graphed(step: Any) -> Any:
        """``step`` captured as a CUDA graph, as vLLM runs its steps: no kernel launch cost in the time."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                step()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        return graph

    def timed(fn: Any, repeats: int) -> float:
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        return statistics.median(times)

    out: dict[str, Any] = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "model": "Llama-3.1-8B shape, random bf16 weights",
        "prefill": [],
        "decode": [],
    }
    repeats = 5 if quick else 15
    with torch.inference_mode():
        for n in PREFILL_TOKENS[:4] if quick else PREFILL_TOKENS:
            tokens = torch.randint(0, VOCAB, (n,), device=dev)
            seconds = timed(graphed(lambda tokens=tokens: prefill(tokens)).replay, repeats)
            out["prefill"].append({"new_tokens": n, "seconds": seconds})
            print(f"prefill {n:>5} tokens: {seconds * 1e3:8.2f} ms", flush=True)
        for c in DECODE_CONTEXTS:
            for b in DECODE_BATCHES[:3] if quick else DECODE_BATCHES:
                if b * c > MAX_KV_TOKENS:
                    continue
                cache = [
                    (
                        torch.randn(b, KV_HEADS, c, HEAD_DIM, device=dev, dtype=dt),
                        torch.randn(b, KV_HEADS, c, HEAD_DIM, device=dev, dtype=dt),
                    )
                    for _ in range(LAYERS)
                ]
                tokens = torch.randint(0, VOCAB, (b,), device=dev)
                graph = graphed(lambda tokens=tokens, cache=cache: decode_step(tokens, cache))
                seconds = timed(graph.replay, repeats * 2)
                out["decode"].append({"batch": b, "context": float(b * c), "seconds": seconds})
                print(f"decode B={b:>3} x {c:>5} context: {seconds * 1e3:7.3f} ms", flush=True)
                del graph, cache
                torch.cuda.empty_cache()
    return out


# --- step 2: fit and compare (our package) ---------------------------------------------------------------


def compare(samples: dict[str, Any]) -> dict[str, Any]:
    from autoscaler.config.profiles import load_profile
    from autoscaler.profiles.fitting import DecodeSample, PrefillSample, fit_time_model

    prefill = [PrefillSample(int(s["new_tokens"]), float(s["seconds"])) for s in samples["prefill"]]
    decode = [
        DecodeSample(int(s["batch"]), float(s["context"]), float(s["seconds"])) for s in samples["decode"]
    ]
    fit = fit_time_model(prefill, decode)
    h100 = load_profile("llama-3.1-8b/h100-tp1")
    scale = H100_BANDWIDTH / H200_BANDWIDTH  # memory-bound terms on the H200
    rows = []
    for s in prefill:
        predicted = h100.prefill_time(s.new_tokens)
        rows.append(
            {
                "kind": "prefill",
                "shape": f"{s.new_tokens} tokens",
                "measured_s": s.seconds,
                "h100_profile_s": predicted,
                "ratio": s.seconds / predicted,
            }
        )
    for s in decode:
        predicted = h100.decode_step_time(s.batch, s.context / s.batch) * scale
        rows.append(
            {
                "kind": "decode",
                "shape": f"B={s.batch} x {int(s.context) // s.batch}",
                "measured_s": s.seconds,
                "h100_profile_s": predicted,
                "ratio": s.seconds / predicted,
            }
        )
    prefill_ratios = [r["ratio"] for r in rows if r["kind"] == "prefill" and "8192" not in r["shape"]]
    return {
        "benchmark": "gpu_step_times",
        "device": samples.get("device"),
        "torch": samples.get("torch"),
        "fit": {
            "step_base_s": fit.base_s,
            "prefill_per_step_s": fit.prefill_per_step_s,
            "prefill_per_token_s": fit.prefill_per_token_s,
            "prefill_per_attention_pair_s": fit.prefill_per_attention_pair_s,
            "decode_per_sequence_s": fit.decode_per_sequence_s,
            "decode_per_context_token_s": fit.decode_per_context_token_s,
            "prefill_rms_relative_error": fit.prefill_rms_relative_error,
            "decode_rms_relative_error": fit.decode_rms_relative_error,
        },
        "h100_profile": {
            "step_base_s": h100.step.base_s.value,
            "prefill_per_step_s": h100.prefill.per_step_s.value,
            "prefill_per_token_s": h100.prefill.per_token_s.value,
            "prefill_per_attention_pair_s": h100.prefill.per_attention_pair_s.value,
            "decode_per_sequence_s": h100.decode.per_sequence_s.value,
            "decode_per_context_token_s": h100.decode.per_context_token_s.value,
            "decode_bandwidth_scale_to_h200": scale,
        },
        "prefill_median_ratio_measured_vs_profile": statistics.median(prefill_ratios),
        "decode_median_ratio_measured_vs_profile": statistics.median(
            r["ratio"] for r in rows if r["kind"] == "decode"
        ),
        "rows": rows,
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"{'kind':<8} {'shape':<16} {'measured ms':>12} {'profile ms':>11} {'ratio':>7}")
    for r in result["rows"]:
        print(
            f"{r['kind']:<8} {r['shape']:<16} {r['measured_s'] * 1e3:12.3f} "
            f"{r['h100_profile_s'] * 1e3:11.3f} {r['ratio']:7.2f}"
        )
    fit = result["fit"]
    print(
        f"fit: step {fit['step_base_s'] * 1e3:.3f} ms, prefill +{fit['prefill_per_step_s'] * 1e3:.3f} ms/step"
        f" + {fit['prefill_per_token_s'] * 1e6:.3f} us/token"
        f" + {fit['prefill_per_attention_pair_s'] * 1e9:.4f} ns/pair, decode "
        f"{fit['decode_per_sequence_s'] * 1e6:.2f} us/seq + {fit['decode_per_context_token_s'] * 1e9:.4f} "
        f"ns/context token (rms error prefill {fit['prefill_rms_relative_error']:.1%}, "
        f"decode {fit['decode_rms_relative_error']:.1%})"
    )
    print(
        f"measured / profile, median: prefill {result['prefill_median_ratio_measured_vs_profile']:.2f}, "
        f"decode {result['decode_median_ratio_measured_vs_profile']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--measure", action="store_true", help="run the kernels (needs a CUDA GPU and torch)")
    parser.add_argument("--quick", action="store_true", help="fewer shapes and repeats")
    parser.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES, help="measured samples (JSON)")
    parser.add_argument("--out", type=Path, default=Path("gpu_step_times.json"), help="comparison (JSON)")
    args = parser.parse_args()
    if args.measure:
        started = time.perf_counter()
        samples = measure(quick=args.quick)
        samples["wall_s"] = time.perf_counter() - started
        args.samples.parent.mkdir(parents=True, exist_ok=True)
        args.samples.write_text(json.dumps(samples, indent=2) + "\n")
        print(f"wrote {args.samples}")
        return
    if not args.samples.exists():
        sys.exit(f"gpu_step_times: no samples at {args.samples}: run with --measure on a GPU machine first")
    result = compare(json.loads(args.samples.read_text()))
    print_table(result)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
