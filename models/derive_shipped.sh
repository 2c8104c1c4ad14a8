#!/usr/bin/env bash
# Regenerates the derived profiles shipped in models/ (`*-derived.yaml`) with `autoscaler profile derive`.
# Ground-truth models on H100 are fitted to one of their measured runs (--fit-to); the others use the
# H100 fit (models/efficiency.yaml) as it stands. Needs ../shared/groundtruth beside the checkout (or
# AUTOSCALER_GROUNDTRUTH pointing at its h100-vllm-0.15 directory).
set -euo pipefail
cd "$(dirname "$0")/.."
gt="${AUTOSCALER_GROUNDTRUTH:-../shared/groundtruth/h100-vllm-0.15}"
configs="$gt/../model_configs"
derive() { autoscaler profile derive "$@" | tail -n 2; }

# The ground-truth models on H100, fitted to their "general" run (8 then 20 req/s), with its engine knobs.
derive --config "$configs/llama-2-7b-hf/config.json" --model-name meta-llama/Llama-2-7b-hf --gpu h100 --tp 1 \
  --fit-to "$gt/20260217-231439-llama-2-7b-tp1-general" --out models/llama-2-7b/h100-tp1-derived.yaml
derive --config "$configs/llama-2-70b-hf/config.json" --model-name meta-llama/Llama-2-70b-hf --gpu h100 --tp 4 \
  --fit-to "$gt/20260217-202857-llama-2-70b-tp4-general" --out models/llama-2-70b/h100-tp4-derived.yaml
derive --config "$configs/codellama-34b-instruct-hf/config.json" --model-name codellama/CodeLlama-34b-Instruct-hf \
  --gpu h100 --tp 2 --fit-to "$gt/20260218-150304-codellama-34b-tp2-general" \
  --out models/codellama-34b/h100-tp2-derived.yaml
derive --config "$configs/mixtral-8x7b-v0.1/config.json" --model-name mistralai/Mixtral-8x7B-v0.1 --gpu h100 --tp 2 \
  --fit-to "$gt/20260218-130541-mixtral-8x7b-v0-1-tp2-general" --out models/mixtral-8x7b/h100-tp2-derived.yaml

# The others on H100, H200 and A100 (vLLM's default knobs), unfitted: no measurements of them on these.
one() {  # name, config, HF id, gpu, tp
  derive --config "$2" --model-name "$3" --gpu "$4" --tp "$5" --out "models/$1/$4-tp$5-derived.yaml"
}
for gpu_tp in h100:1 h200:1 a100:1; do
  one llama-3.1-8b "$configs/llama-3.1-8b-instruct/config.json" meta-llama/Llama-3.1-8B-Instruct "${gpu_tp%:*}" "${gpu_tp#*:}"
  one qwen3-30b-a3b "$configs/qwen3-30b-a3b/config.json" Qwen/Qwen3-30B-A3B "${gpu_tp%:*}" "${gpu_tp#*:}"
  one gpt-oss-20b gpt-oss-20b openai/gpt-oss-20b "${gpu_tp%:*}" "${gpu_tp#*:}"
done
for gpu_tp in h100:4 h200:2 a100:4; do
  one llama-3.1-70b llama-3.1-70b meta-llama/Llama-3.1-70B-Instruct "${gpu_tp%:*}" "${gpu_tp#*:}"
done
for gpu_tp in h100:2 h200:1 a100:2; do
  one qwen3-32b qwen3-32b Qwen/Qwen3-32B "${gpu_tp%:*}" "${gpu_tp#*:}"
done
for gpu_tp in h200:1 a100:2; do
  one codellama-34b "$configs/codellama-34b-instruct-hf/config.json" codellama/CodeLlama-34b-Instruct-hf "${gpu_tp%:*}" "${gpu_tp#*:}"
done
for gpu in h200 a100; do
  one llama-2-7b "$configs/llama-2-7b-hf/config.json" meta-llama/Llama-2-7b-hf "$gpu" 1
  one llama-2-70b "$configs/llama-2-70b-hf/config.json" meta-llama/Llama-2-70b-hf "$gpu" 4
done
for gpu_tp in h200:1 a100:2; do
  one mixtral-8x7b "$configs/mixtral-8x7b-v0.1/config.json" mistralai/Mixtral-8x7B-v0.1 "${gpu_tp%:*}" "${gpu_tp#*:}"
done
