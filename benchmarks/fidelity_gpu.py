"""Simulator fidelity against real vLLM runs on H100s, with profiles derived for models the fit never saw.

``../shared/groundtruth/h100-vllm-0.15`` holds 16 experiments (Llama-2-7B TP1, Llama-2-70B TP4,
CodeLlama-34B TP2, Mixtral-8x7B TP2; vLLM 0.15.1, prefix caching, chunked prefill) of constant-rate
``shared_prefix`` stages with measured TTFT, TPOT and E2E. For each model in turn (leave one model out):

1. fit the H100's efficiencies (``calibration.fit_efficiency``: weight and KV bandwidth, per-layer,
   per-all-reduce and per-sequence overheads) and the client's first-token lag to the **other** models'
   clean stages, pulled toward the prior (``models/efficiency.yaml``: kernel timings, peers' defaults) by
   a weight chosen by leaving out each of those other models in turn; the prefill's compute terms stay at
   the kernel timings of ``gpu_step_times.py``;
2. derive the held-out model's profile from its config.json and the H100 datasheet with those
   efficiencies (``autoscaler profile derive``'s code), with the experiment's engine knobs;
3. replay each of its experiments' stages back to back through the engine model
   (``autoscaler.sim.stage_replay``: evenly spaced arrivals, the prefix groups, fixed output lengths);
4. compare per stage TTFT mean and p90, TPOT, E2E mean and p90.

Headline: the median absolute relative error over the 20 clean stages of E2E mean (``median_e2e_error``),
TTFT mean (``median_ttft_error``) and TPOT (``median_tpot_error``). The 4 overloaded stages (reasoning:
4-85 % of requests timed out at the client) are replayed and reported apart: the replay has no client
time-out. ``fit_on_all`` is the fit on all four models' stages, the figures stored in
``models/efficiency.yaml``; it is not the headline.

    python benchmarks/fidelity_gpu.py [--quick] [--out FILE] [--root DIR]

``--quick`` replays the first 120 s of each stage (steady state is reached within seconds). Exits 2 with
a message when the ground truth is absent.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

from autoscaler.config.derivation import load_accelerator, load_calibration, load_config  # noqa: E402
from autoscaler.config.groundtruth import Experiment, default_root, load_experiments  # noqa: E402
from autoscaler.profiles.architecture import Architecture, parse_config  # noqa: E402
from autoscaler.profiles.calibration import (  # noqa: E402
    MeasuredStage,
    choose_prior_weight,
    fit_efficiency,
    fit_first_token_s,
)
from autoscaler.profiles.derive import Calibration, EngineKnobs, derive_profile  # noqa: E402
from autoscaler.profiles.roofline import Hardware, TimeCoefficients, hardware  # noqa: E402
from autoscaler.profiles.schema import Profile  # noqa: E402
from autoscaler.sim.stage_replay import StageLatency, replay_stages  # noqa: E402

BLOCK = 16  # the ground truth's block size
GPU = "H100-SXM-80GB"
QUICK_STAGE_S = 120.0
TARGETS = {"median_e2e_error": 0.10, "median_ttft_error": 0.25}
METRICS = ("ttft_mean", "ttft_p90", "tpot", "e2e_mean", "e2e_p90")


def config_dir(root: Path, model: str) -> Path:
    """``model_configs/<name>`` for a Hugging Face id (its lower-cased name)."""
    return root.parent / "model_configs" / model.split("/")[-1].lower()


def knobs_of(experiment: Experiment) -> EngineKnobs:
    return EngineKnobs(
        max_num_seqs=experiment.max_num_seqs,
        max_num_batched_tokens=experiment.max_num_batched_tokens,
        block_size=BLOCK,
        max_model_len=experiment.max_model_len,
    )


def calibrate(
    runs: Mapping[str, Sequence[tuple[Hardware, MeasuredStage]]], prior: Calibration, *, source: str
) -> tuple[Calibration, float]:
    """Efficiencies and the first-token lag fitted to ``runs`` (per model), and the prior weight chosen.

    The weight comes from leaving one of ``runs``' own models out at a time, so a held-out model outside
    ``runs`` plays no part in choosing it. The prefill terms stay at the prior's.
    """
    weight = choose_prior_weight(runs, prior=prior.efficiency, block=BLOCK)
    stages = [run for model_runs in runs.values() for run in model_runs]
    efficiency = fit_efficiency(stages, prior=prior.efficiency, block=BLOCK, prior_weight=weight)
    lag = fit_first_token_s(
        [(TimeCoefficients.of(hw, efficiency), ms) for hw, ms in stages],
        block=BLOCK,
        steps=prior.first_token_steps,
    )
    return dataclasses.replace(prior, efficiency=efficiency, first_token_s=lag, source=source), weight


def _seconds(sim: StageLatency | MeasuredStage) -> dict[str, float]:
    if isinstance(sim, MeasuredStage):
        m = sim.measured
        values = (m.ttft_mean_s, m.ttft_p90_s, m.tpot_s, m.e2e_mean_s, m.e2e_p90_s)
    else:
        values = (sim.ttft_mean_s, sim.ttft_p90_s, sim.tpot_s, sim.e2e_mean_s, sim.e2e_p90_s)
    return dict(zip(METRICS, values, strict=True))


def replay(
    experiments: Sequence[Experiment],
    profile_for: Callable[[Experiment], Profile],
    *,
    quick: bool,
) -> list[dict[str, Any]]:
    """One row per stage: measured and simulated latencies (ms) and the relative error of each."""
    rows: list[dict[str, Any]] = []
    for exp in experiments:
        stages = [
            dataclasses.replace(ms.stage, duration_s=min(ms.stage.duration_s, QUICK_STAGE_S))
            if quick
            else ms.stage
            for ms in exp.stages
        ]
        for index, (sim, ms) in enumerate(
            zip(replay_stages(profile_for(exp), stages), exp.stages, strict=True)
        ):
            real, simulated = _seconds(ms), _seconds(sim)
            rows.append(
                {
                    "experiment": exp.name,
                    "stage": index,
                    "model": exp.model,
                    "tp": exp.tensor_parallel,
                    "rate_rps": ms.stage.rate,
                    "overloaded": ms.overloaded,
                    "measured_ms": {k: round(v * 1e3, 3) for k, v in real.items()},
                    "simulated_ms": {k: round(v * 1e3, 3) for k, v in simulated.items()},
                    "simulated_unfinished": sim.unfinished,
                    "error": {k: round(simulated[k] / real[k] - 1, 4) for k in METRICS},
                }
            )
    return rows


def median_abs(rows: Sequence[dict[str, Any]], metric: str, *, overloaded: bool) -> float:
    values = [abs(r["error"][metric]) for r in rows if r["overloaded"] == overloaded]
    return round(statistics.median(values), 4) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"replay the first {QUICK_STAGE_S:.0f} s of each stage"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/fidelity_gpu.json")
    parser.add_argument("--root", type=Path, default=default_root(), help="ground-truth experiments")
    args = parser.parse_args()
    if not args.root.is_dir():
        print(f"fidelity_gpu: no ground truth at {args.root} (set AUTOSCALER_GROUNDTRUTH)", file=sys.stderr)
        return 2
    began = time.monotonic()
    experiments = load_experiments(args.root)
    accelerator = load_accelerator(GPU)
    prior = load_calibration(accelerator, block="prior")
    archs: dict[str, Architecture] = {}
    for exp in experiments:
        config, _ = load_config(config_dir(args.root, exp.model) / "config.json")
        archs[exp.model] = parse_config(config)
    runs: dict[str, list[tuple[Hardware, MeasuredStage]]] = {}  # per model, every stage of its runs
    for exp in experiments:
        hw = hardware(archs[exp.model], accelerator, tp=exp.tensor_parallel, dtype="bf16")
        runs.setdefault(exp.model, []).extend((hw, ms) for ms in exp.stages)
    models = sorted(runs)
    on_all, on_all_weight = calibrate(runs, prior, source="all four ground-truth models")

    def derived(exp: Experiment, calibration: Calibration) -> Profile:
        return derive_profile(
            model=exp.model,
            arch=archs[exp.model],
            accelerator=accelerator,
            tp=exp.tensor_parallel,
            dtype="bf16",
            knobs=knobs_of(exp),
            calibration=calibration,
            config_source=f"{exp.model} config.json",
        )

    fits = {
        held_out: calibrate(
            {m: r for m, r in runs.items() if m != held_out}, prior, source=f"ground truth without {held_out}"
        )
        for held_out in models
    }
    rows = replay(experiments, lambda exp: derived(exp, fits[exp.model][0]), quick=args.quick)
    in_sample = replay(experiments, lambda exp: derived(exp, on_all), quick=args.quick)
    folds = {
        model: {
            "prior_weight": weight,
            "efficiency": dataclasses.asdict(fit.efficiency),
            "first_token_s": fit.first_token_s,
        }
        for model, (fit, weight) in fits.items()
    }

    headline = {
        "median_e2e_error": median_abs(rows, "e2e_mean", overloaded=False),
        "median_ttft_error": median_abs(rows, "ttft_mean", overloaded=False),
        "median_tpot_error": median_abs(rows, "tpot", overloaded=False),
    }
    print(f"{'experiment':<44}{'st':>3}{'rps':>6}  " + "".join(f"{m:>11}" for m in METRICS))
    for r in rows:
        flag = " (overloaded)" if r["overloaded"] else ""
        print(
            f"{r['experiment'][16:]:<44}{r['stage']:>3}{r['rate_rps']:>6.0f}  "
            + "".join(f"{r['error'][m]:>+11.1%}" for m in METRICS)
            + flag
        )
    print(
        "\nclean stages, median |error|: "
        + ", ".join(f"{m} {median_abs(rows, m, overloaded=False):.1%}" for m in METRICS)
    )
    print(
        "in sample (fit on all models), clean stages: "
        + ", ".join(f"{m} {median_abs(in_sample, m, overloaded=False):.1%}" for m in METRICS)
    )
    print(
        "overloaded stages, median |error|: "
        + ", ".join(f"{m} {median_abs(rows, m, overloaded=True):.1%}" for m in METRICS)
    )
    for key, target in TARGETS.items():
        verdict = "meets" if headline[key] <= target else "misses"
        print(f"{key} {headline[key]:.1%} ({verdict} the {target:.0%} target)")
    result: dict[str, Any] = {
        "benchmark": "fidelity_gpu",
        "quick": args.quick,
        **headline,
        "targets": TARGETS,
        "meets_targets": all(headline[k] <= t for k, t in TARGETS.items()),
        "clean_stages": sum(not r["overloaded"] for r in rows),
        "clean_median_abs_error": {m: median_abs(rows, m, overloaded=False) for m in METRICS},
        "overloaded": {
            "note": "reasoning stages: requests timed out at the client; the replay has no time-out",
            "stages": sum(r["overloaded"] for r in rows),
            "median_abs_error": {m: median_abs(rows, m, overloaded=True) for m in METRICS},
        },
        "method": "leave one model out: efficiencies fitted without the held-out model's stages, their pull "
        "toward the prior chosen by leaving out each of the other models in turn (nested)",
        "folds": folds,
        "fit_on_all": {
            "note": "in sample (all models fitted), stored in models/efficiency.yaml: not the headline",
            "prior_weight": on_all_weight,
            "efficiency": dataclasses.asdict(on_all.efficiency),
            "first_token_s": on_all.first_token_s,
            "clean_median_abs_error": {m: median_abs(in_sample, m, overloaded=False) for m in METRICS},
        },
        "experiments": rows,
        "wall_s": round(time.monotonic() - began, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out} in {result['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
