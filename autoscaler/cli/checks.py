"""Checks of command-line values that argparse's types cannot state, shared by the verbs that serve.

Each raises ``ValueError`` with the flag's name, which the verb prints as its one-line error (exit 2),
before anything binds or connects.
"""

from __future__ import annotations


def port(flag: str, value: int | None) -> None:
    """A TCP port, 0 (any free one) to 65535; None: not asked for."""
    if value is not None and not 0 <= value <= 65535:
        raise ValueError(f"{flag} must be a port number from 0 to 65535, got {value}")
