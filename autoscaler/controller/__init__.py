"""The live driver: the cluster controller that runs the pure policy against Kubernetes and Prometheus.

- ``loop``: ``Controller``, leader election, the InferenceAutoscaler watch, one apscheduler job per resource;
- ``cycle``: one control cycle (read, decide, act, report), where every failure becomes a condition;
- ``actuation`` and ``drain``: scale-up in one write, scale-down through the router's drain;
- ``report`` and ``status``: the status subresource, its conditions, and the Events;
- ``leadership``: acting only while the Lease is surely ours;
- ``signals`` and ``router_load``: Prometheus (off the event loop) and the router's per-replica load;
- ``health`` and ``logs``: ``/healthz``, ``/readyz``, ``/metrics``, and JSON-lines logging.
"""
