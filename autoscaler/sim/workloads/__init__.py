"""Workloads for the what-if simulator: loaders, generators and transforms that all produce a ``Trace``.

Modules, by dependency:
- ``trace``: the ``Trace`` value (columnar arrivals, token lengths, optional chained prefix-block hashes);
- ``loaders``: Azure CSV, Mooncake JSONL and plain CSV / JSONL files, ``TraceError`` as ``FILE:LINE: reason``;
- ``hashing``: synthetic prefix hashes for traces without them, and the infinite-cache prefix hit rate;
- ``lengths``, ``curves``, ``generators``: log-normal length presets, rate curves, seeded arrival processes;
- ``transforms``: compress, superpose, modulate, truncate (pure Trace -> Trace);
- ``spec``: ``WorkloadSpec`` (what scenario YAML says) and ``build_workload`` (the composition).
"""
