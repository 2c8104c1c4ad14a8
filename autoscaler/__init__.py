"""Inference Autoscaler: phase-aware autoscaling, cache-affinity routing and what-if simulation for LLMs.

The package is layered (see ARCHITECTURE.md and the import-linter contracts in pyproject.toml):
``core`` < ``profiles`` < ``capacity | engine`` < ``policy | routing`` < ``adapters`` < ``config`` <
``controller | sim | emulator`` < ``cli``. The pure layers take time and randomness as arguments, so the live
controller and the simulator drive exactly the same decision code.
"""

__version__ = "0.1.0"
