"""What a scenario run leaves in its output folder.

- ``summary.json``: the numbers (see ``summary.py``), byte-identical for the same scenario and seed;
- ``requests/<policy>.csv.gz``: one row per request in trace order (NaN: never served), gzip with a fixed
  timestamp so the bytes too depend only on the run; the clairvoyant's run is written as ``clairvoyant``;
- ``timeline/<policy>.csv``: at every scrape, requests arrived so far and replicas per phase by state;
- ``decisions/<policy>.jsonl``: every control step's decision per phase, with its reason and message;
- ``replicas.png`` and ``latency_cdf.png`` and ``report.md`` that embeds them (see ``report.py``).
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from autoscaler.sim import report
from autoscaler.sim.driver import RunResult
from autoscaler.sim.experiment import Experiment
from autoscaler.sim.summary import summary, write_summary

__all__ = ["write_outputs"]

_COLUMNS = "arrival_s,prompt_tokens,output_tokens,ttft_s,itl_s,e2e_s,cached_tokens,preemptions"
_FORMATS = ["%.4f", "%d", "%d", "%.5g", "%.5g", "%.5g", "%d", "%d"]


def write_outputs(experiment: Experiment, out_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """Writes every output; returns the summary and messages for the user (plots skipped, and why)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = summary(experiment)
    write_summary(data, out_dir / "summary.json")
    requests_dir = out_dir / "requests"
    requests_dir.mkdir(exist_ok=True)
    trace = experiment.trace
    # The clairvoyant is a measured run like the policies': its requests, timeline and counts are kept too.
    runs = {**experiment.runs, "clairvoyant": experiment.references.clairvoyant.run}
    for name, run in runs.items():
        table = np.column_stack(
            [
                run.arrival_s,
                trace.prompt_tokens,
                trace.output_tokens,
                run.ttft_s,
                run.itl_s,
                run.e2e_s,
                run.cached_tokens,
                run.preemptions,
            ]
        )
        text = io.StringIO()
        np.savetxt(text, table, fmt=_FORMATS, delimiter=",", header=_COLUMNS, comments="")
        # Level 3: nearly the smallest output in a fraction of the time of the default 9.
        packed = gzip.compress(text.getvalue().encode(), compresslevel=3, mtime=0)
        (requests_dir / f"{name}.csv.gz").write_bytes(packed)
        _write_timeline(run, out_dir / "timeline" / f"{name}.csv")
        _write_decisions(run, out_dir / "decisions" / f"{name}.jsonl")
    messages = report.write_report(experiment, data, out_dir)
    return data, messages


def _write_timeline(run: RunResult, path: Path) -> None:
    path.parent.mkdir(exist_ok=True)
    timeline = run.timeline
    phases = list(timeline.ready)
    columns = ["time_s", "arrivals"] + [
        f"{phase.value}_{state}" for phase in phases for state in ("ready", "starting", "draining")
    ]
    table = np.column_stack(
        [timeline.time_s, timeline.arrivals]
        + [
            series[phase]
            for phase in phases
            for series in (timeline.ready, timeline.starting, timeline.draining)
        ]
    )
    formats = ["%.1f"] + ["%d"] * (len(columns) - 1)
    np.savetxt(path, table, fmt=formats, delimiter=",", header=",".join(columns), comments="")


def _write_decisions(run: RunResult, path: Path) -> None:
    path.parent.mkdir(exist_ok=True)
    lines = []
    for decision in run.decisions:
        record = {
            "time_s": decision.time,
            "phases": {
                phase.value: {
                    "replicas": d.replicas,
                    "previous": d.previous,
                    "reason": d.reason,
                    "message": d.message,
                    "adjustments": list(d.adjustments),
                }
                for phase, d in decision.phases.items()
            },
            "notes": list(decision.notes),
        }
        lines.append(json.dumps(record, sort_keys=True))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
