"""The dashboard's gauges beside the board's: per pool and phase, present only once the controller decided."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.adapters.metrics_exporter import board_registry
from autoscaler.adapters.publishing import DesiredReplicasBoard, Telemetry
from autoscaler.core.phases import Phase
from autoscaler.core.slo import LatencyTarget, Slo

SLO = Slo(ttft=LatencyTarget(1.0, 90.0), itl=LatencyTarget(0.03, 99.0))
LABELS = {"namespace": "serving", "autoscaler": "llama", "pool": "llama-pool", "phase": "decode"}


def _samples(board: DesiredReplicasBoard) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(board_registry(board)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _publish(board: DesiredReplicasBoard, telemetry: Telemetry | None) -> None:
    board.publish(
        namespace="serving",
        autoscaler="llama",
        phase=Phase.DECODE,
        desired=4,
        current=3,
        reason="ScaleUp",
        telemetry=telemetry,
    )


def _key(name: str, **extra: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted({**LABELS, **extra}.items()))


@pytest.mark.parametrize(
    ("arrival", "forecast", "expected_rates"),
    [
        pytest.param(12.5, 15.0, {"autoscaler_arrival_rate": 12.5, "autoscaler_arrival_rate_forecast": 15.0}),
        pytest.param(None, None, {}, id="unusable signals: no rate series, the rest stays"),
    ],
)
def test_a_decision_with_telemetry_exports_ready_rates_calibration_and_slo(
    arrival: float | None, forecast: float | None, expected_rates: dict[str, float]
) -> None:
    board = DesiredReplicasBoard()
    telemetry = Telemetry(
        pool="llama-pool", ready=2, arrival_rate=arrival, forecast_rate=forecast, calibration=1.25, slo=SLO
    )
    _publish(board, telemetry)
    found = {k: v for k, v in _samples(board).items() if "pool" in dict(k[1])}
    assert found == {
        _key("autoscaler_ready_replicas"): 2,
        _key("autoscaler_calibration_factor"): 1.25,
        _key("autoscaler_slo_target_seconds", signal="ttft", quantile="0.9"): 1.0,
        _key("autoscaler_slo_target_seconds", signal="itl", quantile="0.99"): 0.03,
        **{_key(name): value for name, value in expected_rates.items()},
    }


def test_a_decision_without_telemetry_exports_only_the_board_series() -> None:
    board = DesiredReplicasBoard()
    _publish(board, None)
    assert all("pool" not in dict(labels) for _, labels in _samples(board))
