"""The human-readable side of a run: the results table, two plots and a Markdown report embedding them.

The table has a row per policy, then the references: the clairvoyant (a measured run, every column), the
lower bound and the model oracle (GPU-hours only). "/ clairv." and "/ floor" are GPU-hours over the
clairvoyant's and the lower bound's; "SLO feasible" is attainment over the requests that can meet the SLO.

Plots need matplotlib (the ``sim`` extra); without it the report is written without them and the caller is
told why.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from autoscaler.sim.experiment import Experiment

__all__ = ["feasibility_note", "results_table", "write_report"]

_HEADER = (
    "policy",
    "SLO both",
    "SLO feasible",
    "TTFT ok",
    "ITL ok",
    "TTFT p50/p90/p99 s",
    "ITL p50/p90/p99 ms",
    "GPU-h",
    "/ clairv.",
    "/ floor",
    "scale events",
)

_REASONS = {
    "exceeds_kv_cache": "prompt and output exceed one replica's KV cache",
    "prefill_exceeds_ttft": "prefill alone (after a perfect prefix cache) takes longer than the TTFT target",
    "decode_exceeds_itl": "decode alone is slower than the ITL target",
}


def _pct(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def _num(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value * scale:.{digits}f}"


def _row(name: str, m: dict[str, Any]) -> tuple[str, ...]:
    return (
        name,
        _pct(m["slo_attainment"]),
        _pct(m["slo_attainment_feasible"]),
        _pct(m["ttft_attainment"]),
        _pct(m["itl_attainment"]),
        "/".join(_num(m[f"ttft_p{p}_s"]) for p in (50, 90, 99)),
        "/".join(_num(m[f"itl_p{p}_s"], 1000.0, 1) for p in (50, 90, 99)),
        _num(m["gpu_hours"]),
        _num(m.get("gpu_hours_vs_clairvoyant", 1.0)),
        _num(m["gpu_hours_vs_lower_bound"]),
        str(m["scale_events"]),
    )


def _rows(data: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = [_row(name, m) for name, m in data["policies"].items()]
    refs = data["references"]
    rows.append(_row("clairvoyant", refs["clairvoyant"]))
    floor = refs["lower_bound"]
    rows.append(
        (
            "lower bound",
            "",
            "",
            "",
            "",
            "",
            "",
            _num(floor["gpu_hours"]),
            _num(floor["gpu_hours_vs_clairvoyant"]),
            "1.00",
            "",
        )
    )
    model = refs["model_oracle"]
    model_vs_floor = model["gpu_hours"] / floor["gpu_hours"] if floor["gpu_hours"] else math.nan
    rows.append(
        (
            "model oracle",
            "",
            "",
            "",
            "",
            "",
            "",
            _num(model["gpu_hours"]),
            _num(model["gpu_hours_vs_clairvoyant"]),
            _num(model_vs_floor),
            "",
        )
    )
    return rows


def feasibility_note(data: dict[str, Any]) -> str | None:
    """One sentence on the requests no policy can bring within the SLO, and why; None when there are none."""
    feasibility = data["feasibility"]
    infeasible = feasibility["requests"] - feasibility["feasible"]
    if infeasible == 0:
        return None
    reasons = "; ".join(
        f"{count} because {_REASONS[reason]}" for reason, count in feasibility["infeasible"].items() if count
    )
    share = 100 * infeasible / feasibility["requests"]
    return (
        f"{infeasible} of {feasibility['requests']} requests ({share:.1f} %) "
        f"cannot meet the SLO even alone on an idle replica: {reasons}. "
        '"SLO feasible" is attainment over the others.'
    )


def results_table(data: dict[str, Any], *, markdown: bool = False) -> str:
    """One row per policy and reference: aligned text for a terminal, or a Markdown table."""
    rows: list[tuple[str, ...]] = [_HEADER, *_rows(data)]
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        lines.insert(1, "|" + "|".join("---" for _ in _HEADER) + "|")
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def write_report(experiment: Experiment, data: dict[str, Any], out_dir: Path) -> list[str]:
    """Writes ``report.md`` (and the plots when matplotlib is there); returns messages for the user."""
    messages: list[str] = []
    try:
        plots = _plots(experiment, out_dir)
    except ImportError:
        plots = []
        messages.append(
            "matplotlib is not installed: plots skipped (pip install 'inference-autoscaler[sim]')"
        )
    scenario = experiment.scenario
    slo = data["slo"]
    trace = data["trace"]
    refs = data["references"]
    clairvoyant = refs["clairvoyant"]
    window = clairvoyant["window_s"]
    lines = [
        f"# What-if simulation: {scenario.name}",
        "",
        scenario.description,
        "",
        f"- profile: {data['profile']}, {data['mode']}, router: {data['router']}, seed {data['seed']}",
        f"- workload: {trace['name']}, {trace['requests']} requests over {trace['duration_s']:.0f} s "
        f"({trace['mean_rate']:.1f} req/s on average)",
        f"- SLO: TTFT <= {slo['ttft_s']} s and ITL <= {1000 * slo['itl_s']:.0f} ms "
        f"(p{slo['percentile']:g}); attainment is the fraction of all requests meeting the target "
        "(a request's ITL is its mean time per output token, as in vLLM's request_time_per_output_token)",
        f"- clairvoyant: a run in the simulator that knows each {window:.0f} s window's load and starts "
        f"replicas at once, its counts the fewest its search found the simulator to meet the SLO with "
        f"({clairvoyant['windows_met']} of {clairvoyant['windows_judged']} windows met after "
        f"{clairvoyant['search_runs']} runs); GPU-hours count every replica until it is gone, drain included",
        "- lower bound: the profile's prefill and decode work at full utilisation on a perfect prefix cache, "
        "per window, within the replica bounds; no queueing model",
        "- model oracle: the capacity model's replicas for each window of the true load, no start-up delay "
        f"(prefix hit rate {100 * refs['model_oracle']['prefix_hit_rate']:.1f} %): it shares the model's "
        "errors, so its ratio to the clairvoyant is the model's error on this load",
    ]
    note = feasibility_note(data)
    if note is not None:
        lines.append(f"- {note}")
    lines += ["", results_table(data, markdown=True), ""]
    for title, name in plots:
        lines += [f"## {title}", "", f"![{title}]({name})", ""]
    (out_dir / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return messages


def _plots(experiment: Experiment, out_dir: Path) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = experiment.scenario.mode.phases
    trace = experiment.trace
    refs = experiment.references
    window = refs.lower_bound.windows.window_s
    edges = np.arange(0.0, trace.duration_s + window, window)
    load, _ = np.histogram(trace.arrival_s, bins=edges)

    fig, axes = plt.subplots(len(phases), 1, figsize=(10, 3.2 * len(phases)), sharex=True, squeeze=False)
    for ax, phase in zip(axes[:, 0], phases, strict=True):
        rate_ax = ax.twinx()
        rate_ax.fill_between(edges[:-1] / 60, load / window, step="post", color="0.85", label="load")
        rate_ax.set_ylabel("req/s")
        ax.set_zorder(rate_ax.get_zorder() + 1)
        ax.patch.set_visible(False)
        for name, run in experiment.runs.items():
            timeline = run.timeline
            provisioned = timeline.ready[phase] + timeline.starting[phase]
            ax.step(timeline.time_s / 60, provisioned, where="post", label=name)
        clairvoyant = refs.clairvoyant.run.timeline
        provisioned = clairvoyant.ready[phase] + clairvoyant.starting[phase]
        ax.step(clairvoyant.time_s / 60, provisioned, where="post", color="k", label="clairvoyant")
        floor = refs.lower_bound
        ax.step(
            floor.windows.start_s / 60,
            floor.replicas[phase],
            where="post",
            color="k",
            ls=":",
            label="lower bound",
        )
        ax.set_ylabel(f"{phase.value} replicas")
        ax.legend(loc="upper left", fontsize=8, ncol=3)
    axes[-1, 0].set_xlabel("time (min)")
    fig.suptitle("Replicas asked for (ready + starting) per phase, against the load")
    fig.tight_layout()
    fig.savefig(out_dir / "replicas.png", dpi=110)
    plt.close(fig)

    slo = experiment.scenario.slo
    fig, (ttft_ax, itl_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for name, run in {**experiment.runs, "clairvoyant": refs.clairvoyant.run}.items():
        for ax, values in ((ttft_ax, run.ttft_s), (itl_ax, run.itl_s * 1000)):
            finite = np.sort(values[np.isfinite(values)])
            if finite.size:
                ax.plot(finite, np.arange(1, finite.size + 1) / finite.size, label=name)
    ttft_ax.axvline(slo.ttft_s, color="k", ls=":", label="SLO")
    itl_ax.axvline(slo.itl_s * 1000, color="k", ls=":", label="SLO")
    ttft_ax.set_xscale("log")
    ttft_ax.set_xlabel("TTFT (s)")
    itl_ax.set_xlabel("ITL, per-request mean (ms)")
    for ax in (ttft_ax, itl_ax):
        ax.set_ylabel("fraction of served requests")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "latency_cdf.png", dpi=110)
    plt.close(fig)
    return [("Replicas over time", "replicas.png"), ("Latency CDFs", "latency_cdf.png")]
