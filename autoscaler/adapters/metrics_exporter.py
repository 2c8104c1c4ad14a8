"""``/metrics`` view of the desired-replicas board, for KEDA's Prometheus trigger or prometheus-adapter.

Rendered at scrape time from the board (``autoscaler.adapters.publishing``), so a deleted autoscaler leaves
no stale series. Per ``{namespace, autoscaler, phase}``:

- ``autoscaler_desired_replicas``: the replicas our policy wants (the scaling metric);
- ``autoscaler_current_replicas``: the replicas the decision started from;
- ``autoscaler_decision_info{..., reason}``: 1, labelled with the policy's reason tag (``ScaleUp``, ...);
- ``autoscaler_decision_timestamp_seconds``: when the decision was published (wall clock), so an alert can
  fire on ``time() - autoscaler_decision_timestamp_seconds > 120`` when the controller stops deciding.

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

prometheus-adapter (external rule) and a plain HPA::

    rules:
      external:
        - seriesQuery: 'autoscaler_desired_replicas{autoscaler!="", phase!=""}'
          resources: {overrides: {exported_namespace: {resource: namespace}}}
          metricsQuery: max(<<.Series>>{<<.LabelMatchers>>}) by (autoscaler, phase)
    ---
    metrics:
      - type: External
        external:
          metric:
            name: autoscaler_desired_replicas
            selector: {matchLabels: {autoscaler: llama, phase: decode}}
          target: {type: AverageValue, averageValue: "1"}

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

from autoscaler.adapters.publishing import DesiredReplicasBoard

LABELS = ("namespace", "autoscaler", "phase")


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
        for key, entry in self._board.snapshot().items():
            values = [key.namespace, key.autoscaler, key.phase.value]
            desired.add_metric(values, entry.desired)
            current.add_metric(values, entry.current)
            info.add_metric([*values, entry.reason], 1)
            published.add_metric(values, entry.time)
        yield from (desired, current, info, published)


def board_registry(board: DesiredReplicasBoard) -> CollectorRegistry:
    """A registry holding only the board's gauges (serve it with ``prometheus_client.make_asgi_app``)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(DesiredReplicasCollector(board))
    return registry
