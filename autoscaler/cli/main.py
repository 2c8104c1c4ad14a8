"""``autoscaler <verb>``: one command, one module per verb.

Each verb module exposes ``add_arguments(parser)`` and ``run(args) -> int`` and is imported only when its
verb is invoked, so ``autoscaler --help`` stays fast and a verb's heavy dependencies (the simulator's plots,
the router's HTTP stack) load only for that verb. Exit codes: 0 success, 1 failure while running, 2 bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Verb:
    module: str  # under autoscaler.cli
    help: str  # one line
    extra: str | None = None  # the package extra its dependencies come from (None: the base install)


VERBS: dict[str, Verb] = {
    "plan": Verb(module="plan", help="size prefill and decode replicas for a load and an SLO (one shot)"),
    "profile": Verb(
        module="profile",
        help="derive a performance profile from config.json, or measure a live vLLM engine ([router])",
    ),
    "simulate": Verb(
        module="simulate",
        help="what-if simulation of a trace or synthetic load with policies in the loop",
        extra="sim",
    ),
    "emulate": Verb(
        module="emulate",
        help="serve one emulated vLLM replica in real time (OpenAI API, /metrics, KV events)",
        extra="router",
    ),
    "router": Verb(
        module="router",
        help="cache-affinity router: OpenAI-compatible HTTP proxy in front of vLLM engines",
        extra="router",
    ),
    "controller": Verb(
        module="controller",
        help="cluster controller: scales each InferenceAutoscaler's prefill and decode",
        extra="controller",
    ),
}


def _top_parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<10} {verb.help}" for name, verb in VERBS.items())
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
    verb = VERBS[top.verb]
    try:
        module = importlib.import_module(f"autoscaler.cli.{verb.module}")
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] == "autoscaler":
            raise  # our own module missing is a bug, not an install choice
        print(_missing_extra(top.verb, verb, error.name), file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"autoscaler {top.verb}", description=module.__doc__ or verb.help)
    module.add_arguments(parser)
    status: int = module.run(parser.parse_args(top.args))
    return status


def _missing_extra(name: str, verb: Verb, missing: str) -> str:
    """One line naming the install a verb needs (``--help`` included: a verb's options live in its module)."""
    extra = f"[{verb.extra}]" if verb.extra else ""
    install = f"pip install 'inference-autoscaler{extra}'"
    return f"autoscaler {name}: no module named {missing!r}; this verb needs {install}"


if __name__ == "__main__":
    sys.exit(main())
