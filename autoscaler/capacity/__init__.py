"""The per-phase capacity model: how many replicas a load needs to meet latency targets.

Pure, deterministic and vectorised (every solver takes numpy arrays, so a grid of loads is sized in one
call). ``plan`` is the scalar entry point; ``prefill``, ``decode`` and ``aggregated`` hold the models.
"""
