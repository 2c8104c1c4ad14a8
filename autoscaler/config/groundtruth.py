"""Reading ground-truth serving runs (``../shared/groundtruth``): one inference-perf experiment directory.

An experiment directory holds ``exp-config.yaml`` (the model and the engine knobs), ``results/config.yaml``
(the resolved workload: the shared-prefix shape and the constant-rate stages) and one
``results/stage_N_lifecycle_metrics.json`` per stage (latency statistics of the successful requests, the
count of failed ones). TPOT is derived as (E2E mean - TTFT mean) / (output - 1) with the configured output
length: the load tool's own ITL and TPOT are about half the true per-token time (the README's caveat).
The data is never copied into the repository; it is found through ``$AUTOSCALER_GROUNDTRUTH`` or beside
the checkout.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import yaml

from autoscaler.profiles.calibration import Measured, MeasuredStage, Stage

__all__ = ["Experiment", "GroundTruthError", "default_root", "load_experiment", "load_experiments"]


class GroundTruthError(ValueError):
    """An experiment directory that is missing files or fields (one line)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Experiment:
    name: str
    model: str  # Hugging Face id
    tensor_parallel: int
    max_num_seqs: int
    max_num_batched_tokens: int
    max_model_len: int
    stages: tuple[MeasuredStage, ...]


def default_root() -> Path:
    """``$AUTOSCALER_GROUNDTRUTH``, else ``../shared/groundtruth/h100-vllm-0.15`` beside the checkout."""
    override = os.environ.get("AUTOSCALER_GROUNDTRUTH")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3] / "shared" / "groundtruth" / "h100-vllm-0.15"


def _read(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise GroundTruthError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise GroundTruthError(f"{path}: not valid {path.suffix[1:]}") from exc


def _positive(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
        raise GroundTruthError(f"{what}: expected a positive number, got {value!r}")
    return float(value)


def load_experiment(path: Path) -> Experiment:
    knobs = _read(path / "exp-config.yaml")
    resolved = _read(path / "results" / "config.yaml")
    try:
        shape = resolved["data"]["shared_prefix"]
        stages_cfg = resolved["load"]["stages"]
        model = str(knobs["model"])
        tp = int(knobs["tensor_parallelism"])
    except (KeyError, TypeError, ValueError) as exc:
        raise GroundTruthError(f"{path}: missing workload or engine field {exc}") from exc
    output = int(_positive(shape.get("output_len"), f"{path}: output_len"))
    stages: list[MeasuredStage] = []
    for index, cfg in enumerate(stages_cfg):
        metrics = _read(path / "results" / f"stage_{index}_lifecycle_metrics.json")
        try:
            latency = metrics["successes"]["latency"]
            ttft, e2e = latency["time_to_first_token"], latency["request_latency"]
            prompt = metrics["successes"]["prompt_len"]["mean"]
            failures = int(metrics.get("failures", {}).get("count", 0))
        except (KeyError, TypeError) as exc:
            raise GroundTruthError(f"{path}: stage {index} has no latency field {exc}") from exc
        ttft_mean, e2e_mean = _positive(ttft["mean"], "ttft"), _positive(e2e["mean"], "e2e")
        stages.append(
            MeasuredStage(
                stage=Stage(
                    rate=_positive(cfg["rate"], "rate"),
                    duration_s=_positive(cfg["duration"], "duration"),
                    prompt_tokens=round(_positive(prompt, "prompt_len")),
                    shared_prefix_tokens=int(_positive(shape["system_prompt_len"], "system_prompt_len")),
                    output_tokens=output,
                    groups=int(_positive(shape["num_groups"], "num_groups")),
                    prompts_per_group=int(_positive(shape["num_prompts_per_group"], "num_prompts_per_group")),
                ),
                measured=Measured(
                    ttft_mean_s=ttft_mean,
                    ttft_p90_s=_positive(ttft["p90"], "ttft p90"),
                    e2e_mean_s=e2e_mean,
                    e2e_p90_s=_positive(e2e["p90"], "e2e p90"),
                    tpot_s=(e2e_mean - ttft_mean) / max(1, output - 1),
                ),
                overloaded=failures > 0,
            )
        )
    return Experiment(
        name=path.name,
        model=model,
        tensor_parallel=tp,
        max_num_seqs=int(knobs.get("max_num_seqs", 256)),
        max_num_batched_tokens=int(knobs.get("max_num_batched_tokens", 8192)),
        max_model_len=int(knobs.get("max_model_len", 4096)),
        stages=tuple(stages),
    )


def load_experiments(root: Path) -> list[Experiment]:
    """Every experiment directory under ``root`` (those with an ``exp-config.yaml``), by name."""
    return [load_experiment(p) for p in sorted(root.iterdir()) if (p / "exp-config.yaml").is_file()]
