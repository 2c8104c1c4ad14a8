"""What a scenario run leaves in its output folder.

- ``summary.json``: the numbers (see ``summary.py``), byte-identical for the same scenario and seed;
- ``requests/<policy>.csv.gz``: one row per request in trace order (NaN: never served), gzip with a fixed
  timestamp so the bytes too depend only on the run;
- ``replicas.png`` and ``latency_cdf.png`` and ``report.md`` that embeds them (see ``report.py``).
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Any

import numpy as np

from autoscaler.sim import report
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
    for name, run in experiment.runs.items():
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
        # Level 3: within 10 % of the smallest output in an eighth of the time of the default 9.
        packed = gzip.compress(text.getvalue().encode(), compresslevel=3, mtime=0)
        (requests_dir / f"{name}.csv.gz").write_bytes(packed)
    messages = report.write_report(experiment, data, out_dir)
    return data, messages
