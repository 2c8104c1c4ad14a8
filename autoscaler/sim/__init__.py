"""The what-if simulator: replay a workload through a simulated cluster, policy and router in the loop.

- ``driver``: the event loop (``simulate``) over engines (``autoscaler.engine``), the cluster's replica
  lifecycle (``cluster``) and the Prometheus-like signals a policy sees (``signals``);
- ``scenario``, ``experiment``, ``policies``: a scenario file, run once per policy;
- ``oracle``: the GPU-hours a perfect autoscaler would pay, by the capacity model;
- ``summary``, ``outputs``, ``report``: summary.json, per-request results, plots and the Markdown report;
- ``workloads``: traces, loaders, synthetic generators and transforms.
"""
