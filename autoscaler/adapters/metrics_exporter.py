"""``/metrics`` view of the desired-replicas board, for KEDA's Prometheus trigger or prometheus-adapter.

Rendered at scrape time from the board (``autoscaler.adapters.publishing``), so a deleted autoscaler leaves
no stale series. Per ``{namespace, autoscaler, phase}``:

- ``autoscaler_desired_replicas``: the replicas our policy wants (the scaling metric);
- ``autoscaler_current_replicas``: the replicas the decision started from;
- ``autoscaler_decision_info{..., reason}``: 1, labelled with the policy's reason tag (``ScaleUp``, ...);
- ``autoscaler_decision_timestamp_seconds``: when the decision was published (wall clock), so an alert can
  fire on ``time() - autoscaler_decision_timestamp_seconds > 120`` when the controller stops deciding.

For the chart's Grafana dashboard, per ``{namespace, autoscaler, pool, phase}`` (``pool`` is the label the
engines' and the router's series carry, so panels join on it), once the controller has decided:

- ``autoscaler_ready_replicas``: the replicas serving when the decision was made;
- ``autoscaler_arrival_rate`` and ``autoscaler_arrival_rate_forecast``: requests/s as the policy read them
  and as it foresees them over the replica start-up horizon (absent while the signals are unusable);
- ``autoscaler_calibration_factor``: observed / predicted latency, the factor on the profile's times;
- ``autoscaler_slo_target_seconds{signal, quantile}``: the TTFT and ITL targets the panels draw as lines.

Names are colon-free (prometheus-client 0.23 and later rewrite colons).

An HPA must read the gauge with an ``AverageValue`` target of 1: HPA then computes
``ceil(value / 1)`` = our number, where a ``Value`` target would give ``ceil(current * value)``.

KEDA's Prometheus trigger::

    triggers:
      - type: prometheus
        metricType: AverageValue
        metadata:
          serverAddress: http://prometheus.monitoring:9090
          query: max(autoscaler_desired_replicas{autoscaler="llama", phase="decode"})
          threshold: "1"
          activationThreshold: "0.5"   # active while desired >= 1
          # add exported_namespace="serving" to the selector when two namespaces reuse a name

prometheus-adapter (external rule), then a plain HPA whose ``metrics`` are as in ``external_metrics``::

    rules:
      external:
        - seriesQuery: 'autoscaler_desired_replicas{autoscaler!="", phase!=""}'
          resources: {overrides: {exported_namespace: {resource: namespace}}}
          metricsQuery: max(<<.Series>>{<<.LabelMatchers>>}) by (autoscaler, phase)

When Prometheus scrapes the controller through Kubernetes service discovery, the target's own ``namespace``
label wins and ours is stored as ``exported_namespace`` (unless the scrape job sets ``honor_labels``); the
queries above assume that. ``max`` keeps the query a single series if two controller pods are scraped (only
the leader publishes).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from autoscaler.adapters.publishing import BoardKey, DesiredReplicasBoard, Telemetry

LABELS = ("namespace", "autoscaler", "phase")
TELEMETRY_LABELS = ("namespace", "autoscaler", "pool", "phase")


class DesiredReplicasCollector(Collector):
    """Renders the board's entries; register it on the controller's registry."""

    def __init__(self, board: DesiredReplicasBoard) -> None:
        self._board = board

    def collect(self) -> Iterator[GaugeMetricFamily]:
        desired = GaugeMetricFamily(
            "autoscaler_desired_replicas",
            "Replicas the autoscaler's policy wants for the phase",
            labels=LABELS,
        )
        current = GaugeMetricFamily(
            "autoscaler_current_replicas", "Replicas the last decision started from", labels=LABELS
        )
        info = GaugeMetricFamily(
            "autoscaler_decision_info", "The reason tag of the last decision", labels=[*LABELS, "reason"]
        )
        published = GaugeMetricFamily(
            "autoscaler_decision_timestamp_seconds",
            "Wall-clock time the last decision was published",
            labels=LABELS,
        )
        telemetry = _TelemetryFamilies()
        for key, entry in self._board.snapshot().items():
            values = [key.namespace, key.autoscaler, key.phase.value]
            desired.add_metric(values, entry.desired)
            current.add_metric(values, entry.current)
            info.add_metric([*values, entry.reason], 1)
            published.add_metric(values, entry.time)
            if entry.telemetry is not None:
                telemetry.add(key, entry.telemetry)
        yield from (desired, current, info, published)
        yield from telemetry.families()


class _TelemetryFamilies:
    """The dashboard's gauges, filled entry by entry during one scrape."""

    def __init__(self) -> None:
        self.ready = GaugeMetricFamily(
            "autoscaler_ready_replicas",
            "Replicas serving when the decision was made",
            labels=TELEMETRY_LABELS,
        )
        self.rate = GaugeMetricFamily(
            "autoscaler_arrival_rate", "Requests per second as the policy read them", labels=TELEMETRY_LABELS
        )
        self.forecast = GaugeMetricFamily(
            "autoscaler_arrival_rate_forecast",
            "Requests per second the policy foresees over the replica start-up horizon",
            labels=TELEMETRY_LABELS,
        )
        self.calibration = GaugeMetricFamily(
            "autoscaler_calibration_factor",
            "Observed over predicted latency: the factor on the profile's times",
            labels=TELEMETRY_LABELS,
        )
        self.slo = GaugeMetricFamily(
            "autoscaler_slo_target_seconds",
            "The latency target: the quantile of the signal must stay at or below it",
            labels=[*TELEMETRY_LABELS, "signal", "quantile"],
        )

    def add(self, key: BoardKey, telemetry: Telemetry) -> None:
        values = [key.namespace, key.autoscaler, telemetry.pool, key.phase.value]
        self.ready.add_metric(values, telemetry.ready)
        if telemetry.arrival_rate is not None:
            self.rate.add_metric(values, telemetry.arrival_rate)
        if telemetry.forecast_rate is not None:
            self.forecast.add_metric(values, telemetry.forecast_rate)
        self.calibration.add_metric(values, telemetry.calibration)
        for signal, target in (("ttft", telemetry.slo.ttft), ("itl", telemetry.slo.itl)):
            self.slo.add_metric([*values, signal, f"{target.quantile:g}"], target.seconds)

    def families(self) -> tuple[GaugeMetricFamily, ...]:
        return (self.ready, self.rate, self.forecast, self.calibration, self.slo)


def board_registry(board: DesiredReplicasBoard) -> CollectorRegistry:
    """A registry holding only the board's gauges (serve it with ``prometheus_client.make_asgi_app``)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(DesiredReplicasCollector(board))
    return registry
