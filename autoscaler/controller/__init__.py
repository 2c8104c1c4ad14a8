"""The live driver: the cluster controller that runs the pure policy against Kubernetes and Prometheus.

- ``loop``: ``Controller``, leader election, the InferenceAutoscaler watch, one apscheduler job per resource;
- ``cycle``: one control cycle (read, decide, act, report), where every failure becomes a condition;
- ``actuation`` and ``drain``: scale-up in one write, scale-down through the router's drain;
- ``report`` and ``status``: the status subresource, its conditions, and the Events;
- ``leadership``: acting only while the Lease is surely ours;
- ``signals``: the port a cycle reads its signals through (``adapters.prometheus_signals`` live);
- ``health`` and ``logs``: ``/healthz``, ``/readyz``, ``/metrics``, and JSON-lines logging.

Every network client (Kubernetes, Prometheus, the router's ``/metrics``) is built in ``adapters`` and wired
together in the composition root, ``cli.controller.build_controller``.
"""
