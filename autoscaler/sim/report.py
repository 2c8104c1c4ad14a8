"""The human-readable side of a run: the results table, two plots and a Markdown report embedding them.

Plots need matplotlib (the ``sim`` extra); without it the report is written without them and the caller is
told why.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from autoscaler.sim.experiment import Experiment

__all__ = ["results_table", "write_report"]

_HEADER = (
    "policy",
    "SLO both",
    "TTFT ok",
    "ITL ok",
    "TTFT p50/p90/p99 s",
    "ITL p50/p90/p99 ms",
    "GPU-h",
    "/ oracle",
    "scale events",
)


def _pct(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def _num(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value * scale:.{digits}f}"


def _rows(data: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for name, m in data["policies"].items():
        rows.append(
            (
                name,
                _pct(m["slo_attainment"]),
                _pct(m["ttft_attainment"]),
                _pct(m["itl_attainment"]),
                "/".join(_num(m[f"ttft_p{p}_s"]) for p in (50, 90, 99)),
                "/".join(_num(m[f"itl_p{p}_s"], 1000.0, 1) for p in (50, 90, 99)),
                _num(m["gpu_hours"]),
                _num(m["gpu_hours_vs_oracle"]),
                str(m["scale_events"]),
            )
        )
    oracle = data["oracle"]
    rows.append(("oracle", "", "", "", "", "", _num(oracle["gpu_hours"]), "1.00", ""))
    return rows


def results_table(data: dict[str, Any], *, markdown: bool = False) -> str:
    """One row per policy (and the oracle): aligned text for a terminal, or a Markdown table."""
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
        f"- oracle: the capacity model's replicas for each {data['oracle']['window_s']:.0f} s window of the "
        f"true load, no start-up delay (prefix hit rate {100 * data['oracle']['prefix_hit_rate']:.1f} %)",
        "",
        results_table(data, markdown=True),
        "",
    ]
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
    window = experiment.oracle.window_s
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
        oracle = experiment.oracle
        ax.step(oracle.start_s / 60, oracle.replicas[phase], where="post", color="k", ls="--", label="oracle")
        ax.set_ylabel(f"{phase.value} replicas")
        ax.legend(loc="upper left", fontsize=8, ncol=3)
    axes[-1, 0].set_xlabel("time (min)")
    fig.suptitle("Replicas asked for (ready + starting) per phase, against the load")
    fig.tight_layout()
    fig.savefig(out_dir / "replicas.png", dpi=110)
    plt.close(fig)

    slo = experiment.scenario.slo
    fig, (ttft_ax, itl_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for name, run in experiment.runs.items():
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
