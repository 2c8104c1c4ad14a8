"""The human-readable side of a run: the results table, two plots and a Markdown report embedding them.

The table has a row per policy, then the references: the clairvoyant and its counts at real start-up
(measured runs, every column), the lower bound and the model oracle (GPU-hours only). "/ clairv." and
"/ floor" are GPU-hours over the clairvoyant's and the lower bound's; "SLO feasible" is attainment over the
requests that can meet the SLO.
The report says in words what each policy is (``sim.policies.describe``), what the columns mean and what
the table shows (the best attainment and at what cost).

``replicas.png`` has a panel per policy and phase, each on its own scale: on one shared axis a baseline
that swings to its maximum flattens every other policy to a line at the bottom. ``latency_cdf.png`` marks
the SLO's target and its percentile.

Plots need matplotlib (the ``sim`` extra); without it the report is written without them and the caller is
told why.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from autoscaler.sim import policies
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


_TABLE_WORDS = (
    "One row per policy, then the references. **SLO both** is the share of all requests that met both "
    "latency targets (TTFT and ITL; **TTFT ok** and **ITL ok** each alone), **SLO feasible** the same over "
    "the requests that can meet them at all; then each latency's p50/p90/p99 over the served requests. "
    "**GPU-h** counts every replica's GPUs from when it was asked for until it was gone; **/ clairv.** and "
    "**/ floor** divide it by the clairvoyant's and the lower bound's (1.00: as cheap as knowing the "
    "future, or as the work itself). **scale events** counts the changes of the replica count."
)


def _findings(data: dict[str, Any]) -> str:
    """The table in words: which policy served best, and at what cost against the clairvoyant."""
    measured = {
        name: m
        for name, m in data["policies"].items()
        if m["slo_attainment"] is not None and math.isfinite(m["slo_attainment"])
    }
    if not measured:
        return "No policy served a request."
    best = max(measured, key=lambda name: (measured[name]["slo_attainment"], -measured[name]["gpu_hours"]))
    cheapest = min(measured, key=lambda name: measured[name]["gpu_hours"])
    clairvoyant = data["references"]["clairvoyant"]

    def cost(name: str) -> str:
        m = measured[name]
        ratio = _num(m.get("gpu_hours_vs_clairvoyant"))
        return f"{_pct(m['slo_attainment'])} at {ratio}x the clairvoyant's GPU-hours"

    words = f"Highest SLO attainment: **{best}** ({cost(best)})."
    if cheapest != best:
        words += f" Fewest GPU-hours: **{cheapest}** ({cost(cheapest)})."
    real_startup = data["references"]["clairvoyant_real_startup"]
    return words + (
        f" The clairvoyant reaches {_pct(clairvoyant['slo_attainment'])} with perfect foresight and instant "
        "start-up: a policy close to it in both columns is near the best any autoscaler can do here. Its "
        f"counts reach {_pct(real_startup['slo_attainment'])} when its replicas take the cluster's start-up "
        "time."
    )


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


def _reference_row(name: str, ref: dict[str, Any], *, vs_floor: str) -> tuple[str, ...]:
    """A computed reference's row: GPU-hours and their ratios only (nothing of it was run)."""
    ratios = (_num(ref["gpu_hours"]), _num(ref["gpu_hours_vs_clairvoyant"]), vs_floor)
    return (name, *[""] * 6, *ratios, "")


def _rows(data: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = [_row(name, m) for name, m in data["policies"].items()]
    refs = data["references"]
    rows.append(_row("clairvoyant", refs["clairvoyant"]))
    rows.append(_row("clairvoyant, real start-up", refs["clairvoyant_real_startup"]))
    floor = refs["lower_bound"]
    rows.append(_reference_row("lower bound", floor, vs_floor="1.00"))
    model = refs["model_oracle"]
    model_vs_floor = model["gpu_hours"] / floor["gpu_hours"] if floor["gpu_hours"] else math.nan
    rows.append(_reference_row("model oracle", model, vs_floor=_num(model_vs_floor)))
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
        "- clairvoyant, real start-up: the clairvoyant's counts asked for at the same moments, but its "
        "replicas take the cluster's start-up time: what a policy that read each window's load at once and "
        "asked for no more than it needed would reach; the gap to the clairvoyant is what starting replicas "
        "at once is worth on this load",
        "- lower bound: the profile's prefill and decode work at full utilisation on a perfect prefix cache, "
        "per window, within the replica bounds; no queueing model",
        "- model oracle: the capacity model's replicas for each window of the true load, no start-up delay "
        f"(prefix hit rate {100 * refs['model_oracle']['prefix_hit_rate']:.1f} %): it shares the model's "
        "errors, so its ratio to the clairvoyant is the model's error on this load",
    ]
    note = feasibility_note(data)
    if note is not None:
        lines.append(f"- {note}")
    lines += ["", "## The policies compared", ""]
    lines += [f"- **{name}**: {policies.describe(name)}" for name in data["policies"]]
    lines += ["", "## Results", "", _TABLE_WORDS, "", results_table(data, markdown=True), ""]
    lines += [_findings(data), ""]
    for title, name, caption in plots:
        lines += [f"## {title}", "", caption, "", f"![{title}]({name})", ""]
    (out_dir / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return messages


def _plots(experiment: Experiment, out_dir: Path) -> list[tuple[str, str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _replicas_plot(plt, experiment, out_dir / "replicas.png")
    _latency_plot(plt, experiment, out_dir / "latency_cdf.png")
    return [
        (
            "Replicas over time",
            "replicas.png",
            "A row per policy, a column per phase, each panel on its own scale (its peak in its title): the "
            "policy's replicas asked for (ready + starting), the clairvoyant's (black), the lower bound "
            "(dotted) and the load (grey, right axis).",
        ),
        (
            "Latency CDFs",
            "latency_cdf.png",
            "The share of served requests at or under each latency, per policy and for the clairvoyant "
            "(grey): a policy meets a latency target where its curve crosses the SLO percentile's line "
            "(dotted) left of the target (dashed).",
        ),
    ]


def _replicas_plot(plt: Any, experiment: Experiment, path: Path) -> None:
    """One panel per policy and phase, each on its own scale: a baseline that swings to its maximum cannot
    flatten the others. Every panel repeats the clairvoyant and the lower bound (the same in each) and the
    load behind, so each policy reads against the same references."""
    from matplotlib.ticker import MaxNLocator

    phases = experiment.scenario.mode.phases
    trace = experiment.trace
    refs = experiment.references
    window = refs.lower_bound.windows.window_s
    edges = np.arange(0.0, trace.duration_s + window, window)
    load, _ = np.histogram(trace.arrival_s, bins=edges)
    rate = np.append(load, load[-1:]) / window  # the last window's rate drawn to its end
    clairvoyant = refs.clairvoyant.run.timeline
    floor = refs.lower_bound
    names = list(experiment.runs)
    height = 2.3 * len(names) + 1.2  # inches: a row of panels per policy, and the legend
    fig, axes = plt.subplots(
        len(names),
        len(phases),
        figsize=(6.0 * len(phases), height),
        sharex=True,
        squeeze=False,
    )
    for row, name in enumerate(names):
        timeline = experiment.runs[name].timeline
        for col, phase in enumerate(phases):
            ax = axes[row, col]
            rate_ax = ax.twinx()
            rate_ax.fill_between(
                edges / 60, rate, step="post", color="0.88", label="load (req/s, right axis)"
            )
            rate_ax.set_ylim(bottom=0)
            rate_ax.tick_params(axis="y", labelsize=7, colors="0.5")
            ax.set_zorder(rate_ax.get_zorder() + 1)
            ax.patch.set_visible(False)
            provisioned = timeline.ready[phase] + timeline.starting[phase]
            ax.step(timeline.time_s / 60, provisioned, where="post", color=f"C{row}", lw=2.2, label="policy")
            ax.step(
                clairvoyant.time_s / 60,
                clairvoyant.ready[phase] + clairvoyant.starting[phase],
                where="post",
                color="k",
                lw=0.9,
                label="clairvoyant",
            )
            ax.step(
                floor.windows.start_s / 60,
                floor.replicas[phase],
                where="post",
                color="k",
                ls=":",
                lw=0.9,
                label="lower bound",
            )
            ax.set_ylim(0, max(ax.get_ylim()[1], 1.0) * 1.08)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(f"{name}: {phase.value} (peak {int(provisioned.max())})", fontsize=9, loc="left")
            ax.set_ylabel("replicas", fontsize=8)
            ax.grid(alpha=0.3)
    for col in range(len(phases)):
        axes[-1, col].set_xlabel("time (min)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    load_handles, load_labels = rate_ax.get_legend_handles_labels()
    fig.legend(
        handles + load_handles,
        ["policy: replicas asked for (ready + starting)", *labels[1:], *load_labels],
        loc="upper center",
        ncol=4,
        fontsize=8,
        bbox_to_anchor=(0.5, 1 - 0.4 / height),
    )
    fig.suptitle("Replicas per policy and phase against the load (each panel on its own scale)", y=0.999)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / height))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _latency_plot(plt: Any, experiment: Experiment, path: Path) -> None:
    """The CDF of each latency per run, with the SLO's target and percentile marked: a run meets the
    latency SLO where its curve crosses the percentile's line left of the target."""
    slo = experiment.scenario.slo
    quantile = slo.percentile / 100
    fig, (ttft_ax, itl_ax) = plt.subplots(1, 2, figsize=(11, 4.4))
    # the clairvoyant first, wide and grey: a policy's curve on top of it stays visible
    runs = {"clairvoyant": experiment.references.clairvoyant.run, **experiment.runs}
    for i, (name, run) in enumerate(runs.items()):
        style = {"color": "0.6", "lw": 3.0} if name == "clairvoyant" else {"color": f"C{i - 1}", "lw": 1.4}
        for ax, values in ((ttft_ax, run.ttft_s), (itl_ax, run.itl_s * 1000)):
            finite = np.sort(values[np.isfinite(values)])
            if finite.size:
                ax.plot(finite, np.arange(1, finite.size + 1) / finite.size, label=name, **style)
    for ax, target, unit in ((ttft_ax, slo.ttft_s, "s"), (itl_ax, slo.itl_s * 1000, "ms")):
        ax.axvline(target, color="r", ls="--", lw=1, label=f"SLO target {target:g} {unit}")
        ax.axhline(quantile, color="r", ls=":", lw=1, label=f"SLO percentile p{slo.percentile:g}")
        ax.set_ylim(0, 1.01)
        ax.set_ylabel("fraction of served requests")
        ax.grid(alpha=0.3, which="both")
    ttft_ax.set_xscale("log")  # queueing spreads TTFT over decades; ITL stays within one
    ttft_ax.set_title("Time to first token")
    ttft_ax.set_xlabel("TTFT (s, log scale)")
    itl_ax.set_title("Inter-token latency (each request's mean)")
    itl_ax.set_xlabel("ITL (ms)")
    ttft_ax.legend(fontsize=8, loc="lower right")
    title = f"Latency CDFs: the SLO holds where a curve crosses p{slo.percentile:g} left of the target"
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
