"""Workloads for the what-if simulator: loaders, generators and transforms that all produce a ``Trace``."""
