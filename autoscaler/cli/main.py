"""``autoscaler <verb>``: one command, one module per verb.

Each verb module exposes ``add_arguments(parser)`` and ``run(args) -> int`` and is imported only when its
verb is invoked, so ``autoscaler --help`` stays fast and a verb's heavy dependencies (the simulator's plots,
the router's HTTP stack) load only for that verb. Exit codes: 0 success, 1 failure while running, 2 bad input.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# verb -> (module under autoscaler.cli, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "plan": ("plan", "size prefill and decode replicas for a load and an SLO (one shot)"),
    "profile": ("profile", "measure a live vLLM engine and write a performance profile (measured)"),
    "simulate": ("simulate", "what-if simulation of a trace or synthetic load with policies in the loop"),
    "emulate": ("emulate", "serve one emulated vLLM replica in real time (OpenAI API, /metrics, KV events)"),
    "router": ("router", "cache-affinity router: OpenAI-compatible HTTP proxy in front of vLLM engines"),
    "controller": ("controller", "cluster controller: scales each InferenceAutoscaler's prefill and decode"),
}


def _top_parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {verb:<10} {help_text}" for verb, (_, help_text) in VERBS.items())
    parser = argparse.ArgumentParser(
        prog="autoscaler",
        description="Phase-aware autoscaler, cache-affinity router and what-if simulator for LLM serving.",
        epilog=f"verbs:\n{listing}\n\nRun 'autoscaler VERB --help' for a verb's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("verb", choices=list(VERBS), metavar="VERB")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    top = _top_parser().parse_args(argv)
    module_name, help_text = VERBS[top.verb]
    module = importlib.import_module(f"autoscaler.cli.{module_name}")
    parser = argparse.ArgumentParser(prog=f"autoscaler {top.verb}", description=module.__doc__ or help_text)
    module.add_arguments(parser)
    status: int = module.run(parser.parse_args(top.args))
    return status


if __name__ == "__main__":
    sys.exit(main())
