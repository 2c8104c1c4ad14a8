"""The board as Prometheus text: one series per (namespace, autoscaler, phase), gone once removed."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.adapters.metrics_exporter import board_registry
from autoscaler.adapters.publishing import DesiredReplicasBoard
from autoscaler.core.phases import Phase


def scrape(board: DesiredReplicasBoard) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(board_registry(board)).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def labels(**extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"namespace": "serving", "autoscaler": "llama", **extra}.items()))


def test_each_phase_is_a_series_with_desired_current_reason_and_time() -> None:
    board = DesiredReplicasBoard(wall_clock=lambda: 1_700_000_000.0)
    board.publish(
        namespace="serving", autoscaler="llama", phase=Phase.PREFILL, desired=3, current=2, reason="ScaleUp"
    )
    board.publish(
        namespace="serving", autoscaler="llama", phase=Phase.DECODE, desired=8, current=8, reason="Hold"
    )
    assert scrape(board) == {
        ("autoscaler_desired_replicas", labels(phase="prefill")): 3,
        ("autoscaler_desired_replicas", labels(phase="decode")): 8,
        ("autoscaler_current_replicas", labels(phase="prefill")): 2,
        ("autoscaler_current_replicas", labels(phase="decode")): 8,
        ("autoscaler_decision_info", labels(phase="prefill", reason="ScaleUp")): 1,
        ("autoscaler_decision_info", labels(phase="decode", reason="Hold")): 1,
        ("autoscaler_decision_timestamp_seconds", labels(phase="prefill")): 1_700_000_000.0,
        ("autoscaler_decision_timestamp_seconds", labels(phase="decode")): 1_700_000_000.0,
    }


def test_a_removed_autoscaler_leaves_no_stale_series() -> None:
    board = DesiredReplicasBoard()
    board.publish(
        namespace="serving", autoscaler="llama", phase=Phase.AGGREGATED, desired=1, current=1, reason="R"
    )
    board.remove(namespace="serving", autoscaler="llama")
    assert scrape(board) == {}
