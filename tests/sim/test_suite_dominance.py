"""The suite's dominated_by: the baselines at least as good on attainment for no more GPU-hours."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.sim.suite import Point, dominated_by, scenario_entry

BASELINES = ("static", "keda", "wva")

CASES = [
    (
        "a baseline better on both axes dominates",
        {"ours": Point(0.90, 5.0), "static": Point(0.95, 4.0)},
        {"ours": ["static"], "static": []},
    ),
    (
        "ties on both axes count as dominance",
        {"ours": Point(0.90, 5.0), "static": Point(0.90, 5.0)},
        {"ours": ["static"], "static": []},
    ),
    (
        "more attainment for more GPU-hours is a trade, not dominance",
        {"ours": Point(0.99, 5.0), "wva": Point(0.97, 4.0), "keda": Point(0.999, 9.0)},
        {"ours": [], "wva": [], "keda": []},
    ),
    (
        "ours never dominates a baseline, and a baseline never dominates itself",
        {"ours": Point(1.0, 1.0), "keda": Point(0.8, 9.0), "wva": Point(0.9, 8.0)},
        {"ours": [], "keda": ["wva"], "wva": []},
    ),
    (
        "several dominating baselines are listed sorted",
        {"ours": Point(0.5, 9.0), "wva": Point(0.6, 8.0), "keda": Point(0.7, 3.0), "static": Point(0.5, 9.0)},
        {"ours": ["keda", "static", "wva"], "wva": ["keda"], "keda": [], "static": ["keda", "wva"]},
    ),
]


@pytest.mark.parametrize(("points", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_dominated_by(points: dict[str, Point], expected: dict[str, list[str]]) -> None:
    assert dominated_by(points, baselines=BASELINES) == expected


def _summary(seed: int, ours: tuple[float, float], static: tuple[float, float]) -> dict[str, Any]:
    def metrics(attainment: float, hours: float) -> dict[str, float]:
        return {"slo_attainment": attainment, "slo_attainment_feasible": attainment, "gpu_hours": hours}

    return {
        "seed": seed,
        "mode": "disaggregated",
        "slo": {},
        "trace": {"requests": 100},
        "feasibility": {"feasible_fraction": 0.9},
        "references": {
            "clairvoyant": {
                "slo_attainment": 1.0,
                "slo_attainment_feasible": 1.0,
                "gpu_hours": 2.0,
                "windows_met": 3,
                "windows_judged": 3,
            },
            "clairvoyant_real_startup": metrics(0.5 + seed / 10, 2.0),
            "lower_bound": {"gpu_hours": 1.0},
            "model_oracle": {"gpu_hours": 2.0},
        },
        "policies": {"ours": metrics(*ours), "static": metrics(*static)},
    }


def test_scenario_entry_compares_means_over_seeds() -> None:
    """Ours is better than static on seed 1 and worse on seed 2: the means decide (0.85 at 3 GPU-h)."""
    entry = scenario_entry([_summary(1, (0.9, 2.0), (0.8, 3.0)), _summary(2, (0.8, 4.0), (1.0, 3.0))])
    ours = entry["policies"]["ours"]
    assert ours["slo_attainment"] == pytest.approx(0.85)
    assert ours["vs_clairvoyant"] == pytest.approx(1.5)
    assert ours["vs_lower_bound"] == pytest.approx(3.0)
    assert ours["dominated_by"] == ["static"]  # static: 0.9 at 3.0 GPU-hours
    assert entry["clairvoyant"]["slo_attainment"] == 1.0 and entry["feasible_fraction"] == pytest.approx(0.9)
    assert entry["clairvoyant_real_startup"]["slo_attainment"] == pytest.approx(0.65)
