"""The what-if simulator: replay a workload through a simulated cluster, policy and router in the loop.

- ``driver``: the event loop (``simulate``) over engines (``autoscaler.engine``), the cluster's replica
  lifecycle (``cluster``) and the Prometheus-like signals a policy sees (``signals``);
- ``scenario``, ``experiment``, ``policies``: a scenario file, run once per policy;
- the references a policy is judged against: ``clairvoyant`` (a simulated run that knows the future load
  and starts replicas at once, sized by simulation), ``lower_bound`` (the profile's work at full
  utilisation), ``feasibility`` (requests no policy can serve within the SLO) and ``oracle`` (the capacity
  model's own count, the model oracle); ``suite``: the workload suite's comparisons;
- ``summary``, ``outputs``, ``report``: summary.json, per-request results, plots and the Markdown report;
- ``workloads``: traces, loaders, synthetic generators and transforms.
"""
