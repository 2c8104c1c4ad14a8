"""``autoscaler profile derive``: a profile for any model on any GPU, from config.json and a datasheet.

Example:
  autoscaler profile derive --config path/to/config.json --gpu h100 --tp 2 [--dtype fp8] \\
      [--fit-to RUN] [--out FILE]

Reads the model's Hugging Face config.json (or a model named in models/architectures.yaml), the
accelerator's datasheet (models/accelerators.yaml) and its fitted efficiencies (models/efficiency.yaml),
and writes a profile whose every number has provenance "derived" (or "assumed", for the engine knobs and
start-up) with its source. --fit-to adjusts the derived time model to one measured run: a ground-truth
experiment directory (inference-perf stages, ../shared/groundtruth) or the samples JSON that
`autoscaler profile --samples` writes; it prints the fitted factors and the error before and after.
Exit codes: 0 written, 2 bad input (unknown architecture field, unknown GPU, TP that does not divide the
heads, a model that does not fit in memory).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from autoscaler.config.derivation import DerivationError, load_accelerator, load_calibration, load_config
from autoscaler.config.groundtruth import Experiment, GroundTruthError, load_experiment
from autoscaler.config.profiles import models_dir
from autoscaler.profiles.architecture import ArchitectureError, parse_config
from autoscaler.profiles.calibration import FactorFit, fit_factors, sample_rows, stage_rows
from autoscaler.profiles.derive import EngineKnobs, derive_profile
from autoscaler.profiles.roofline import DTYPE_BYTES, TimeCoefficients, hardware
from autoscaler.profiles.schema import Profile
from autoscaler.sim.stage_replay import replay_stages

_PROG = "autoscaler profile derive"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--config", required=True, help="config.json path, or a model named in models/architectures.yaml"
    )
    parser.add_argument("--gpu", required=True, help="accelerator name or alias (models/accelerators.yaml)")
    parser.add_argument("--tp", type=int, default=1, help="tensor-parallel degree (GPUs per replica)")
    parser.add_argument("--dtype", choices=sorted(DTYPE_BYTES), default="bf16", help="weight dtype")
    parser.add_argument("--model-name", help="model name in the profile (default: the config's directory)")
    parser.add_argument("--max-num-seqs", type=int, default=256, help="the engine's --max-num-seqs")
    parser.add_argument("--max-num-batched-tokens", type=int, default=8192, help="its token budget per step")
    parser.add_argument("--block-size", type=int, default=16, help="its KV block size")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="its memory share")
    parser.add_argument("--max-model-len", type=int, default=4096, help="its context limit")
    parser.add_argument(
        "--fit-to", type=Path, help="a measured run to fit to: experiment directory or profile samples JSON"
    )
    parser.add_argument(
        "--out", type=Path, help="profile file (default: models/<model>/<gpu>-tp<N>-derived.yaml)"
    )


def _fail(message: str) -> int:
    print(f"{_PROG}: error: {message}", file=sys.stderr)
    return 2


def _model_name(args: argparse.Namespace) -> str:
    if args.model_name:
        return str(args.model_name)
    path = Path(args.config)
    return path.parent.name if path.is_file() and path.parent.name else str(args.config)


def _knobs(args: argparse.Namespace, experiment: Experiment | None) -> EngineKnobs:
    if experiment is not None:  # the run's own knobs: the profile must describe the engine that was measured
        return EngineKnobs(
            max_num_seqs=experiment.max_num_seqs,
            max_num_batched_tokens=experiment.max_num_batched_tokens,
            block_size=args.block_size,
            gpu_memory_utilization=args.gpu_memory_utilization,
            max_model_len=experiment.max_model_len,
        )
    return EngineKnobs(
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens,
        block_size=args.block_size,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_model_len=args.max_model_len,
    )


def _samples(path: Path, c: TimeCoefficients) -> Any:
    try:
        data = json.loads(path.read_text())
        prefill = [(int(s["new_tokens"]), float(s["seconds"])) for s in data["prefill"]]
        decode = [(int(s["batch"]), float(s["context"]), float(s["seconds"])) for s in data["decode"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DerivationError(f"{path}: not an `autoscaler profile --samples` file: {exc}") from exc
    return sample_rows(c, prefill, decode)


def _replayed(profile: Profile, experiment: Experiment) -> list[dict[str, float]]:
    """Per clean stage: relative errors of the replay against the run (TTFT mean, TPOT, E2E mean)."""
    out = []
    for sim, ms in zip(
        replay_stages(profile, [m.stage for m in experiment.stages]), experiment.stages, strict=True
    ):
        if ms.overloaded:
            continue
        m = ms.measured
        out.append(
            {
                "ttft": sim.ttft_mean_s / m.ttft_mean_s - 1,
                "tpot": sim.tpot_s / m.tpot_s - 1,
                "e2e": sim.e2e_mean_s / m.e2e_mean_s - 1,
            }
        )
    return out


def _median_abs(rows: list[dict[str, float]]) -> str:
    return ", ".join(
        f"{key} {float(np.median([abs(r[key]) for r in rows])):.1%}" for key in ("ttft", "tpot", "e2e")
    )


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.tp <= 64:
        return _fail(f"--tp must be between 1 and 64, got {args.tp}")
    try:
        config, config_source = load_config(args.config)
        arch = parse_config(config)
        arch.check_tensor_parallel(args.tp)
        accelerator = load_accelerator(args.gpu)
        calibration = load_calibration(accelerator)
        experiment = load_experiment(args.fit_to) if args.fit_to and args.fit_to.is_dir() else None
        knobs = _knobs(args, experiment)
        common: dict[str, Any] = {
            "model": _model_name(args),
            "arch": arch,
            "accelerator": accelerator,
            "tp": args.tp,
            "dtype": args.dtype,
            "knobs": knobs,
            "calibration": calibration,
            "config_source": config_source,
        }
        profile = derive_profile(**common)
        factors: FactorFit | None = None
        if args.fit_to is not None:
            c = TimeCoefficients.of(
                hardware(arch, accelerator, tp=args.tp, dtype=args.dtype), calibration.efficiency
            )
            if experiment is not None:
                rows = stage_rows(c, experiment.stages, block=knobs.block_size)
            else:
                rows = _samples(args.fit_to, c)
            factors = fit_factors(rows)
            fitted = derive_profile(**common, factors=factors)
    except (ArchitectureError, DerivationError, GroundTruthError, ValueError) as exc:
        return _fail(str(exc))
    if factors is not None:
        print(
            f"fitted to {args.fit_to}: step x{factors.step:.3f}, decode x{factors.decode:.3f}, "
            f"prefill x{factors.prefill:.3f}; median |error| of the time model on the run "
            f"{factors.error_before:.1%} before, {factors.error_after:.1%} after"
        )
        if experiment is not None:
            before, after = _replayed(profile, experiment), _replayed(fitted, experiment)
            if before:
                print(f"replayed clean stages, median |error| before: {_median_abs(before)}")
                print(f"                                      after:  {_median_abs(after)}")
        profile = fitted
    gpu = accelerator.aliases[0] if accelerator.aliases else accelerator.name.lower()
    out = args.out or models_dir() / profile.model.split("/")[-1].lower() / f"{gpu}-tp{args.tp}-derived.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    header = f"# {profile.name}, derived by `autoscaler profile derive` ({args.dtype})\n"
    out.write_text(
        header + yaml.safe_dump(profile.model_dump(mode="json", exclude_none=True), sort_keys=False)
    )
    weights = hardware(arch, accelerator, tp=args.tp, dtype=args.dtype).weight_bytes_per_gpu / 2**30
    print(
        f"{profile.model} on {args.tp} x {accelerator.name} ({args.dtype}): {arch.total_params / 1e9:.2f}B "
        f"parameters ({arch.active_params / 1e9:.2f}B active), {weights:.1f} GiB weights per GPU, KV "
        f"{profile.kv_capacity_tokens:,.0f} tokens; decode step "
        f"{profile.decode_step_time(1, 1000) * 1e3:.2f} ms at batch 1, "
        f"{profile.decode_step_time(64, 1000) * 1e3:.2f} ms at 64 x 1k context; "
        f"prefill of 2k tokens {profile.prefill_time(2048) * 1e3:.1f} ms\nwrote {out}"
    )
    return 0
