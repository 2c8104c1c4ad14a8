"""``autoscaler <verb>``: one command, one module per verb.

Each verb module exposes ``add_arguments(parser)`` and ``run(args) -> int``; imports of the verb's heavy
dependencies happen inside ``run`` so that ``autoscaler --help`` stays fast and works with only the core
installed. Exit codes: 0 success, 1 failure while running, 2 bad input.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# verb -> (module under autoscaler.cli, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "plan": ("plan", "size prefill and decode replicas for a load and an SLO (one shot)"),
    "simulate": ("simulate", "what-if simulation of a trace or synthetic load with policies in the loop"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autoscaler",
        description="Phase-aware autoscaler, cache-affinity router and what-if simulator for LLM serving.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, (module_name, help_text) in VERBS.items():
        module = importlib.import_module(f"autoscaler.cli.{module_name}")
        sub = verbs.add_parser(verb, help=help_text, description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    status: int = args._module.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
