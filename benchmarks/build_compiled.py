"""An opt-in mypyc build of the simulator's hot modules, for timing runs only.

The package always imports its pure-Python modules: nothing under ``autoscaler/`` knows of this build, CI
never makes it, and a fresh checkout runs without it. This script compiles the modules that placement and
the engine model spend their time in (``HOT``) from the very same sources into ``build/compiled/``
(ignored by git), never beside the sources, and records each source's SHA-256. ``activate`` then puts the
compiled modules in front of the sources for one process, after checking that no source changed since the
build (a stale build would time old code). mypyc keeps Python's semantics (ints of any size, IEEE doubles,
dict order), so a run gives the same bytes either way; ``tests/sim/test_compiled_build.py`` checks that
whenever a build exists.

    python benchmarks/build_compiled.py                                  # build (needs a C compiler)
    python benchmarks/build_compiled.py --run SCRIPT [ARGS...]           # run SCRIPT with the build
    python benchmarks/build_compiled.py --module MODULE [ARGS...]        # likewise a module

For example ``python benchmarks/build_compiled.py --run benchmarks/sim_speed.py --router affinity`` or
``python benchmarks/build_compiled.py --module autoscaler.cli.main simulate --out DIR``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import runpy
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build" / "compiled"
MANIFEST = "manifest.json"
# Placement and the engine model: most of a simulation's time with the affinity router. Not the event loop
# (sim/driver.py): its results are frozen dataclasses, which mypyc compiles into classes that cannot be
# unpickled (their __setstate__ assigns fields), and the experiment hands results between processes.
HOT = (
    "autoscaler.engine.prefix_cache",
    "autoscaler.engine.replica",
    "autoscaler.engine.sequence",
    "autoscaler.routing.endpoint",
    "autoscaler.routing.index",
    "autoscaler.routing.pd",
    "autoscaler.routing.router",
    "autoscaler.routing.scorers",
)


def _source(module: str) -> Path:
    return REPO / (module.replace(".", "/") + ".py")


def _digest(module: str) -> str:
    return hashlib.sha256(_source(module).read_bytes()).hexdigest()


def build(into: Path = BUILD) -> None:
    """Compile ``HOT`` into ``into``: the modules under ``into/autoscaler/``, mypyc's shared runtime
    library under ``into/lib/`` (the only directory ``activate`` adds to ``sys.path``)."""
    from mypyc.build import mypycify  # mypy ships mypyc (the dev extra)
    from setuptools import Distribution

    digests = {module: _digest(module) for module in HOT}
    shutil.rmtree(into, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="mypyc-") as tmp:
        out = Path(tmp) / "out"
        # mypyc type-checks with the project's mypy settings, from pyproject.toml in the working directory.
        extensions = mypycify(
            [str(_source(m).relative_to(REPO)) for m in HOT], opt_level="3", target_dir=str(Path(tmp) / "c")
        )
        distribution = Distribution({"name": "autoscaler-compiled", "ext_modules": extensions})
        command = distribution.get_command_obj("build_ext")
        command.build_lib, command.build_temp = str(out), str(Path(tmp) / "obj")  # type: ignore[attr-defined]
        distribution.run_command("build_ext")
        (into / "lib").mkdir(parents=True)
        for shared in out.glob("*.so"):  # the runtime library the modules share, named by a hash
            shutil.move(shared, into / "lib" / shared.name)
        shutil.move(out / "autoscaler", into / "autoscaler")
    (into / MANIFEST).write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")


def activate(into: Path = BUILD) -> None:
    """Make this process import the compiled modules in ``into`` instead of the sources.

    Call it before anything imports them. Exits with a one-line message when there is no build, or when a
    compiled module's source changed since (rebuild then).
    """
    manifest = into / MANIFEST
    if not manifest.is_file():
        raise SystemExit(f"no compiled build in {into}: run python benchmarks/build_compiled.py")
    digests: dict[str, str] = json.loads(manifest.read_text())
    stale = sorted(module for module, digest in digests.items() if _digest(module) != digest)
    if stale:
        raise SystemExit(f"compiled build is stale ({', '.join(stale)} changed): rebuild it")
    loaded = sorted(module for module in digests if module in sys.modules)
    if loaded:
        raise RuntimeError(f"activate() must run before these are imported: {', '.join(loaded)}")
    sys.path.insert(0, str(into / "lib"))
    for package in sorted({module.rpartition(".")[0] for module in digests}):
        # A package's __path__ is searched in order: the compiled directory first shadows the sources.
        importlib.import_module(package).__path__.insert(0, str(into / package.replace(".", "/")))


def is_compiled(module: str) -> bool:
    """Whether ``module`` (imported) is an extension module, i.e. came from a build."""
    return not str(getattr(sys.modules[module], "__file__", "")).endswith(".py")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--run", metavar="SCRIPT", type=Path, help="run SCRIPT with the compiled modules")
    target.add_argument("--module", metavar="MODULE", help="run MODULE as __main__ with the compiled modules")
    argv = sys.argv[1:]
    args = parser.parse_args(argv[:2])  # what follows is SCRIPT's or MODULE's own arguments
    rest = argv[2:]
    if args.run is None and args.module is None:
        build()
        print(f"compiled {len(HOT)} modules into {BUILD}")
        return
    activate()
    if args.run is not None:
        sys.argv = [str(args.run), *rest]
        sys.path.insert(0, str(args.run.resolve().parent))  # as ``python SCRIPT`` would
        runpy.run_path(str(args.run), run_name="__main__")
    else:
        sys.argv = [args.module, *rest]
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
