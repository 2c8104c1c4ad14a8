"""The Kubernetes side of the controller, through the official asyncio client (``kubernetes.aio``).

I/O only: every module reads or writes API objects and returns frozen values; choosing replica counts,
victims or deletion costs is the caller's job.

- ``connection``: the ``ApiClient``, from the pod's service account or a kubeconfig;
- ``workload``: ``WorkloadRef``, which object a pool scales (any kind with a ``scale`` subresource);
- ``scale``: read a Scale, set replicas under optimistic concurrency (a 409 re-reads and says "decide again");
- ``pods``: the pods of a selector (readiness, draining, deletion cost), their watch, and the annotations
  that drain them;
- ``events``: ``events.k8s.io/v1`` Events about a workload;
- ``foreign``: HPAs and KEDA ScaledObjects that already scale a workload;
- ``resources``: the controller's custom resources: list, bounded watches, status writes;
- ``watching``: one bounded watch request (list-then-watch, resume from a version, 410 means list again);
- ``leases``: leader election on a ``coordination.k8s.io/v1`` Lease with an injected clock;
- ``inference_pools``: the members of a GIE ``InferencePool`` (its pods on its target ports), followed for
  the router's endpoint picker;
- ``errors``: the typed errors every call raises instead of the client's exceptions.
"""
